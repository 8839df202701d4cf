package objectives

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// TestAutoencoderLossMatchesClosedForm: on a fixed batch the reconstruction term (L1 and L2), the
// KL term (per-sample 0.5·Σ(μ² + σ² - 1 - log σ²) over C, H, W, then the batch mean), the total
// and the gradients of the total with respect to the mean and log-variance equal a float64 host
// computation.
func TestAutoencoderLossMatchesClosedForm(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	const B, C, H, W = 2, 3, 4, 4 // pixels
	const c, h, w = 2, 2, 2       // latents
	const n, m = C * H * W, c * h * w
	rng := rand.New(rand.NewPCG(5, 6))
	pixels, recon := normals(rng, B*n), normals(rng, B*n)
	mean, logVar := normals(rng, B*m), normals(rng, B*m)
	const klWeight = 0.25

	var wantKL float64
	wantGradMean, wantGradLogVar := make([]float64, B*m), make([]float64, B*m)
	for i := range B * m {
		mu, lv := float64(mean[i]), float64(logVar[i])
		wantKL += 0.5 * (mu*mu + math.Exp(lv) - 1 - lv) / B
		wantGradMean[i] = klWeight * mu / B
		wantGradLogVar[i] = klWeight * 0.5 * (math.Exp(lv) - 1) / B
	}
	for _, kind := range []Reconstruction{L1, L2} {
		obj := Autoencoder{Reconstruction: kind, KLWeight: klWeight}
		if err := obj.Validate(); err != nil {
			t.Fatal(err)
		}
		var wantRec float64
		for i := range B * n {
			d := float64(recon[i]) - float64(pixels[i])
			if kind == L1 {
				wantRec += math.Abs(d) / (B * n)
			} else {
				wantRec += d * d / (B * n)
			}
		}
		outs, err := ExecOnceN(b, func(px, rc, mu, lv *Node) []*Node {
			l := obj.Loss(px, rc, mu, lv)
			g := Gradient(l.Total, mu, lv)
			return []*Node{l.Total, l.Reconstruction, l.KL, g[0], g[1]}
		}, tensors.FromFlatDataAndDimensions(pixels, B, C, H, W), tensors.FromFlatDataAndDimensions(recon, B, C, H, W),
			tensors.FromFlatDataAndDimensions(mean, B, c, h, w), tensors.FromFlatDataAndDimensions(logVar, B, c, h, w))
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []float64{wantRec + klWeight*wantKL, wantRec, wantKL} {
			if got := float64(outs[i].Value().(float32)); !closeTo(got, want, 2e-6) {
				t.Errorf("%s: output %d (total, reconstruction, kl) = %.8g, want %.8g", kind, i, got, want)
			}
		}
		for o, want := range map[int][]float64{3: wantGradMean, 4: wantGradLogVar} {
			got, _, _ := nn.TensorFloat32(outs[o])
			for i := range want {
				if !closeTo(float64(got[i]), want[i], 2e-6) {
					t.Errorf("%s: gradient %d [%d] = %.8g, want %.8g", kind, o, i, got[i], want[i])
					break
				}
			}
		}
	}
}

// TestKLOfStandardNormalIsZero: the posterior N(0, 1) is at zero divergence from the prior, and
// N(μ, 1) at 0.5·Σμ² per sample.
func TestKLOfStandardNormalIsZero(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	mean := []float32{0, 0, 0, 0, 1, 2, -2, 0.5}
	out, err := ExecOnce(b, func(mu *Node) *Node { return KL(mu, ZerosLike(mu)) },
		tensors.FromFlatDataAndDimensions(mean, 2, 1, 2, 2))
	if err != nil {
		t.Fatal(err)
	}
	got := out.Value().([]float32)
	if got[0] != 0 || !closeTo(float64(got[1]), 0.5*(1+4+4+0.25), 1e-7) {
		t.Errorf("KL = %v, want [0 %g]", got, 0.5*(1+4+4+0.25))
	}
}

// TestLatentStatsMergesBatches: 1..10 fed in uneven batches has mean 5.5 and unbiased std
// sqrt(82.5/9), whatever the batching.
func TestLatentStatsMergesBatches(t *testing.T) {
	var s LatentStats
	s.Add([]float32{1, 2, 3})
	s.Add(nil)
	s.Add([]float32{4})
	s.Add([]float32{5, 6, 7, 8, 9, 10})
	wantStd := math.Sqrt(82.5 / 9)
	if s.Count() != 10 || !closeTo(s.Mean(), 5.5, 1e-12) || !closeTo(s.Std(), wantStd, 1e-12) {
		t.Errorf("stats: n %d mean %g std %g, want 10, 5.5, %g", s.Count(), s.Mean(), s.Std(), wantStd)
	}
	if f, err := s.ScalingFactor(); err != nil || !closeTo(f, 1/wantStd, 1e-12) {
		t.Errorf("ScalingFactor = %g, %v; want %g", f, err, 1/wantStd)
	}
	var empty LatentStats
	if _, err := empty.ScalingFactor(); err == nil {
		t.Error("ScalingFactor of no values: want an error")
	}
}

// TestAutoencoderRejectsBadOptions names the key.
func TestAutoencoderRejectsBadOptions(t *testing.T) {
	for _, a := range []Autoencoder{{Reconstruction: "lpips"}, {Reconstruction: L1, KLWeight: -1}} {
		if err := a.Validate(); err == nil {
			t.Errorf("%+v: want an error", a)
		}
	}
}
