package unet

import (
	"math"
	"testing"

	"github.com/golcm/golcm/models/nn"
)

// TestBatchChunksKeepResults: a UNet call split into batch parts
// (nn.Options.BatchChunks) gives the same loss and weight gradients up to
// float32 rounding, including a part count that does not divide the batch.
// Not bit for bit: the backend may pick another matmul kernel for a
// smaller product, and a weight's gradient is a sum over the parts.
func TestBatchChunksKeepResults(t *testing.T) {
	one := probeTiny(t, nn.Options{ConvIm2Col: true}, 7, 3)
	for _, chunks := range []int{2, 3} {
		got := probeTiny(t, nn.Options{ConvIm2Col: true, BatchChunks: chunks, AttentionChunks: chunks}, 7, 3)
		if d := math.Abs(float64(got[0][0] - one[0][0])); d > 1e-6*float64(one[0][0]) {
			t.Errorf("%d parts: loss mean(out²) = %v, one part %v", chunks, got[0][0], one[0][0])
		}
		worst, scale := maxGradDiff(one, got)
		t.Logf("%d parts: max |weight gradient difference| %.3g (largest gradient %.3g)", chunks, worst, scale)
		if worst > 1e-5*scale || scale == 0 {
			t.Errorf("%d parts: weight gradients differ by %g (largest %g)", chunks, worst, scale)
		}
	}
}
