package objectives

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/nn"
)

// normals draws n standard normal float32 values.
func normals(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func closeTo(got, want, tol float64) bool {
	return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want))
}

// TestDiffusionLossMatchesHandComputation: for a fixed batch (latents, noise, offset noise,
// perturbation, a model output and timesteps 0, 500 and 999, which put the Min-SNR weight on both
// sides of γ), the graph's noisy input, target, loss and loss gradient equal a float64 host
// computation of train_text_to_image.py's formulas, for epsilon and v targets, with and without
// Min-SNR weighting, offset noise and input perturbation.
func TestDiffusionLossMatchesHandComputation(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	schedule, err := lcm.NewNoiseSchedule(lcm.DefaultSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	const B, C, H, W = 3, 2, 2, 3
	const N = C * H * W
	timesteps := []int64{0, 500, 999}
	rng := rand.New(rand.NewPCG(3, 4))
	x0, noise, pred := normals(rng, B*N), normals(rng, B*N), normals(rng, B*N)
	offset, perturb := normals(rng, B*C), normals(rng, B*N)

	for _, pt := range []lcm.PredictionType{lcm.PredictEpsilon, lcm.PredictV} {
		for _, gamma := range []float64{0, 5} {
			for _, extra := range [][2]float64{{0, 0}, {0.1, 0.05}} {
				obj := Diffusion{PredictionType: pt, SNRGamma: gamma, NoiseOffset: extra[0], InputPerturbation: extra[1]}
				t.Run(fmt.Sprintf("%s/gamma=%g/offset=%g/perturbation=%g", pt, gamma, extra[0], extra[1]), func(t *testing.T) {
					// The hand computation, in float64 from the float32 alphas_cumprod.
					wantNoisy, wantTarget, wantGrad := make([]float64, B*N), make([]float64, B*N), make([]float64, B*N)
					var wantLoss, plainSum float64
					for i := range B {
						ac := float64(schedule.AlphasCumprod[timesteps[i]])
						a, s := math.Sqrt(ac), math.Sqrt(1-ac)
						w := 1.0
						if gamma > 0 {
							snr := ac / (1 - ac)
							if pt == lcm.PredictEpsilon {
								w = math.Min(snr, gamma) / snr
							} else {
								w = math.Min(snr, gamma) / (snr + 1)
							}
						}
						var sse float64
						for j := range N {
							k := i*N + j
							n := float64(noise[k]) + extra[0]*float64(offset[i*C+j/(H*W)])
							in := n + extra[1]*float64(perturb[k])
							wantNoisy[k] = a*float64(x0[k]) + s*in
							wantTarget[k] = n
							if pt == lcm.PredictV {
								wantTarget[k] = a*n - s*float64(x0[k])
							}
							d := float64(pred[k]) - wantTarget[k]
							sse += d * d
							wantGrad[k] = 2 * w * d / (B * N)
						}
						wantLoss += w * sse / N / B
						plainSum += sse
					}
					if gamma == 0 && !closeTo(wantLoss, plainSum/(B*N), 1e-12) {
						t.Fatalf("reference: weighted mean %g differs from F.mse_loss mean %g", wantLoss, plainSum/(B*N))
					}

					coefs, err := obj.Coefficients(schedule, timesteps)
					if err != nil {
						t.Fatal(err)
					}
					outs, err := ExecOnceN(b, func(in []*Node) []*Node {
						noisy, target := obj.NoisyAndTarget(in[0], in[1], in[2], in[3], in[4], in[5])
						loss := WeightedMSE(in[6], target, in[7])
						return []*Node{noisy, target, loss, Gradient(loss, in[6])[0]}
					}, tensors.FromFlatDataAndDimensions(x0, B, C, H, W), tensors.FromFlatDataAndDimensions(noise, B, C, H, W),
						tensors.FromFlatDataAndDimensions(offset, B, C, 1, 1), tensors.FromFlatDataAndDimensions(perturb, B, C, H, W),
						tensors.FromFlatDataAndDimensions(coefs.Alpha, B), tensors.FromFlatDataAndDimensions(coefs.Sigma, B),
						tensors.FromFlatDataAndDimensions(pred, B, C, H, W), tensors.FromFlatDataAndDimensions(coefs.Weight, B))
					if err != nil {
						t.Fatal(err)
					}
					for o, want := range map[int][]float64{0: wantNoisy, 1: wantTarget, 3: wantGrad} {
						got, _, err := nn.TensorFloat32(outs[o])
						if err != nil {
							t.Fatal(err)
						}
						for k := range want {
							if !closeTo(float64(got[k]), want[k], 2e-6) {
								t.Errorf("output %d [%d] = %.8g, want %.8g", o, k, got[k], want[k])
								break
							}
						}
					}
					if got := float64(outs[2].Value().(float32)); !closeTo(got, wantLoss, 2e-6) {
						t.Errorf("loss = %.8g, want %.8g", got, wantLoss)
					}
				})
			}
		}
	}
}

// TestMinSNRWeightSides: below γ the epsilon weight is 1 and the v weight snr/(snr+1); above it
// γ/snr and γ/(snr+1).
func TestMinSNRWeightSides(t *testing.T) {
	for _, c := range []struct {
		snr  float32
		pt   lcm.PredictionType
		want float64
	}{
		{0.5, lcm.PredictEpsilon, 1}, {0.5, lcm.PredictV, 0.5 / 1.5},
		{20, lcm.PredictEpsilon, 5.0 / 20}, {20, lcm.PredictV, 5.0 / 21},
	} {
		if got := MinSNRWeight(c.snr, 5, c.pt); !closeTo(float64(got), c.want, 1e-7) {
			t.Errorf("MinSNRWeight(%g, 5, %s) = %g, want %g", c.snr, c.pt, got, c.want)
		}
	}
}

// TestDiffusionRejectsBadOptions: unsupported targets, negative options and timesteps outside the
// schedule are errors that name the key.
func TestDiffusionRejectsBadOptions(t *testing.T) {
	schedule, err := lcm.NewNoiseSchedule(lcm.DefaultSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		d  Diffusion
		ts []int64
	}{
		{Diffusion{PredictionType: lcm.PredictSample}, []int64{1}},
		{Diffusion{PredictionType: lcm.PredictEpsilon, SNRGamma: -1}, []int64{1}},
		{Diffusion{PredictionType: lcm.PredictEpsilon, NoiseOffset: -0.1}, []int64{1}},
		{Diffusion{PredictionType: lcm.PredictV}, []int64{1000}},
		{Diffusion{PredictionType: lcm.PredictV}, []int64{-1}},
	} {
		if _, err := c.d.Coefficients(schedule, c.ts); err == nil {
			t.Errorf("%+v at %v: want an error", c.d, c.ts)
		}
	}
}

// TestDropCaptionsEmptiesDrawsBelowProportion: a caption becomes "" exactly when its draw is below
// the proportion (random.random() < proportion_empty_prompts).
func TestDropCaptionsEmptiesDrawsBelowProportion(t *testing.T) {
	caps := []string{"a", "b", "c", "d"}
	got, err := DropCaptions(caps, 0.5, []float64{0.1, 0.5, 0.9, 0.49})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "b", "c", ""}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("DropCaptions = %q, want %q", got, want)
	}
	if got, _ := DropCaptions(caps, 0, []float64{0, 0, 0, 0}); fmt.Sprint(got) != fmt.Sprint(caps) {
		t.Errorf("proportion 0 changed captions: %q", got)
	}
	if _, err := DropCaptions(caps, 1.5, []float64{0, 0, 0, 0}); err == nil {
		t.Error("proportion 1.5: want an error")
	}
	if _, err := DropCaptions(caps, 0.5, []float64{0}); err == nil {
		t.Error("too few draws: want an error")
	}
}
