package unet

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// TestBatchChunksKeepResults: a UNet call split into batch parts
// (nn.Options.BatchChunks) gives the same loss and weight gradients up to
// float32 rounding, including a part count that does not divide the batch.
// Not bit for bit: the backend may pick another matmul kernel for a
// smaller product, and a weight's gradient is a sum over the parts.
func TestBatchChunksKeepResults(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	weights := nn.RandomWeights(cfg.ParamShapes(), 7, 1)
	in := RandomInputs(rand.New(rand.NewPCG(2, 3)), cfg, 3, 8)
	run := func(chunks int) [][]float32 {
		prog, err := CompileProbe(b, cfg, weights, nn.Options{ConvIm2Col: true, BatchChunks: chunks, AttentionChunks: chunks}, true)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := prog.Run(in.Sample, in.Timesteps, in.Context)
		if err != nil {
			t.Fatal(err)
		}
		var all [][]float32
		for _, o := range outs {
			x, _, _ := nn.TensorFloat32(o)
			all = append(all, x)
		}
		return all
	}
	one := run(1)
	for _, chunks := range []int{2, 3} {
		got := run(chunks)
		if d := math.Abs(float64(got[0][0] - one[0][0])); d > 1e-6*float64(one[0][0]) {
			t.Errorf("%d parts: loss mean(out²) = %v, one part %v", chunks, got[0][0], one[0][0])
		}
		worst, scale := 0.0, 0.0
		for i := 1; i < len(one); i++ {
			for j := range one[i] {
				worst = math.Max(worst, math.Abs(float64(got[i][j]-one[i][j])))
				scale = math.Max(scale, math.Abs(float64(one[i][j])))
			}
		}
		t.Logf("%d parts: max |weight gradient difference| %.3g (largest gradient %.3g)", chunks, worst, scale)
		if worst > 1e-5*scale || scale == 0 {
			t.Errorf("%d parts: weight gradients differ by %g (largest %g)", chunks, worst, scale)
		}
	}
}
