package lcm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/nn"
)

// unitRoundoff is half the spacing of a dtype's numbers relative to their
// size, 2^-p for p bits of significand: the largest relative error of
// rounding one value to nearest (bfloat16 p = 8, float16 p = 11).
var unitRoundoff = map[dtypes.DType]float64{dtypes.BFloat16: math.Ldexp(1, -8), dtypes.Float16: math.Ldexp(1, -11)}

// mixedStep is one recorded LCD step's outcome under a precision.
type mixedStep struct {
	loss, gradNorm float64
	values         map[string][]float32    // model_pred, target, their difference, the clipped gradients
	dtypes         map[string]dtypes.DType // of the student, target and Adam moments (every weight's)
}

// runMixedStep runs the fixture's full-distillation step (L2) with the
// teacher stored in and every UNet pass computing in precision (zero:
// float32); perturb, when > 0, multiplies every teacher and student weight
// by (1 + perturb·r), r uniform in [-1, 1], before a float32 step.
func runMixedStep(t *testing.T, f *lcdFixture, precision dtypes.DType, perturb float64) *mixedStep {
	t.Helper()
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	student, studentCfg := f.student(t)
	teacher, err := f.teacher.Weights.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if perturb > 0 {
		rng := rand.New(rand.NewPCG(7, 7))
		for _, w := range []*nn.Weights{teacher, student} {
			for _, name := range w.Names() {
				data, dims, _ := w.Float32(name)
				for i := range data {
					data[i] *= float32(1 + perturb*(2*rng.Float64()-1))
				}
				w.SetFloat32(name, data, dims...)
			}
		}
	}
	if precision != dtypes.InvalidDType {
		if err := teacher.Convert(precision); err != nil {
			t.Fatal(err)
		}
	}
	sa := f.step.Args
	cfg := DistillConfig{
		Mode: Full, Teacher: f.teacher.Config, Student: studentCfg,
		PredictionType: f.schedule.PredictionType, Loss: losses.L2, HuberC: sa.HuberC,
		MaxGradNorm: sa.MaxGradNorm, Beta1: sa.Beta1, Beta2: sa.Beta2,
		AdamEps: sa.Eps, WeightDecay: sa.WeightDecay, EMADecay: sa.EMADecay,
		NN: nn.Options{ConvIm2Col: true}, Precision: precision, Debug: true,
	}
	d, err := NewDistiller(b, cfg, teacher, student)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Step(f.batch(t, *studentCfg.TimeCondProjDim))
	if err != nil {
		t.Fatal(err)
	}
	out := &mixedStep{loss: float64(res.Loss), gradNorm: float64(res.GradNorm), values: map[string][]float32{}}
	for _, name := range []string{"model_pred", "target"} {
		out.values[name], _ = golden.Host(t, res.Debug[name])
	}
	var grad []float32
	for _, name := range student.Names() {
		g, _ := golden.Host(t, res.Debug["grad."+name])
		grad = append(grad, g...)
	}
	out.values["grad"] = grad
	pred, target := out.values["model_pred"], out.values["target"]
	diff := make([]float32, len(pred))
	for i := range diff {
		diff[i] = pred[i] - target[i]
	}
	out.values["diff"] = diff
	out.dtypes = map[string]dtypes.DType{}
	for group, w := range map[string]*nn.Weights{"student": d.Student, "target": d.Target, "adam_m": d.AdamM, "adam_v": d.AdamV} {
		for _, name := range w.Names() {
			if tt, _ := w.Get(name); tt.DType() != dtypes.Float32 {
				out.dtypes[group] = tt.DType()
			} else if _, seen := out.dtypes[group]; !seen {
				out.dtypes[group] = dtypes.Float32
			}
		}
	}
	return out
}

// relDiff is ‖a − b‖ / ‖b‖.
func relDiff(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// TestMixedPrecisionStep runs every sidecar's recorded full-distillation
// step (L2) in bf16 and in fp16 against the same step in float32.
//
// The tolerance is derived from the float32 step's own sensitivity, since
// the UNet is too deep to propagate roundings op by op: a float32 step
// whose teacher and student weights are each multiplied by (1 + u·r), r
// uniform in [-1, 1] and u the dtype's unit roundoff, moves model_pred and
// target by e_w, which is what rounding the weights alone does. Mixed
// precision also rounds every activation once per op (a second set of
// independent errors of the same size per layer) and the UNet inputs; added
// in quadrature that is ~1.5–2·e_w, and the tolerance is 4·e_w (measured:
// 1.3–2.9·e_w). The rest follows from those two tensors:
//   - loss = mean(d²), d = model_pred − target, so by Cauchy–Schwarz
//     |Δloss| ≤ 2·rms(d)·rms(Δd) + rms(Δd)², from the measured Δd (the loss
//     itself must then be computed in float32 from float32 outputs);
//   - the clipped gradient is Jᵀ·d: its relative change is at most d's
//     relative change plus the Jacobian's, the latter bounded like the
//     forward, 4·(the perturbed step's gradient change);
//   - the gradient norm by the same bound (triangle inequality).
//
// A half-precision norm or softmax, a loss in bf16 or a missing float32
// accumulation breaks these bounds; a trained weight, Adam moment or EMA
// target stored in half precision is checked directly.
func TestMixedPrecisionStep(t *testing.T) {
	for _, s := range golden.Sidecars(t) {
		if !s.Has("lcd.latents") {
			continue
		}
		f := loadLCDFixture(t, s)
		ref := runMixedStep(t, f, 0, 0)
		for _, p := range []dtypes.DType{dtypes.BFloat16, dtypes.Float16} {
			t.Run(s.Name+"/"+p.String(), func(t *testing.T) {
				pert := runMixedStep(t, f, 0, unitRoundoff[p])
				got := runMixedStep(t, f, p, 0)
				for _, name := range []string{"model_pred", "target"} {
					err, bound := relDiff(got.values[name], ref.values[name]), 4*relDiff(pert.values[name], ref.values[name])
					t.Logf("%s: relative error %.3g, bound %.3g", name, err, bound)
					if !(err <= bound) {
						t.Errorf("%s: relative error %.3g beyond 4·(weight-rounding sensitivity) = %.3g", name, err, bound)
					}
				}
				d, dd := ref.values["diff"], got.values["diff"]
				delta := make([]float32, len(d))
				for i := range d {
					delta[i] = dd[i] - d[i]
				}
				rmsD, rmsDelta := rms(d), rms(delta)
				if lossErr, bound := math.Abs(got.loss-ref.loss), 2*rmsD*rmsDelta+rmsDelta*rmsDelta; !(lossErr <= bound*(1+1e-3)) {
					t.Errorf("loss %v, float32 %v: off by %.3g, beyond 2·rms(d)·rms(Δd)+rms(Δd)² = %.3g", got.loss, ref.loss, lossErr, bound)
				}
				gradBound := relDiff(dd, d) + 4*relDiff(pert.values["grad"], ref.values["grad"])
				gradErr := relDiff(got.values["grad"], ref.values["grad"])
				t.Logf("loss %v vs %v; gradient relative error %.3g, bound %.3g", got.loss, ref.loss, gradErr, gradBound)
				if !(gradErr <= gradBound) {
					t.Errorf("clipped gradient: relative error %.3g beyond rel(Δd) + 4·sensitivity = %.3g", gradErr, gradBound)
				}
				if normErr := math.Abs(got.gradNorm-ref.gradNorm) / ref.gradNorm; !(normErr <= gradBound) {
					t.Errorf("grad norm %v, float32 %v: relative error %.3g beyond %.3g", got.gradNorm, ref.gradNorm, normErr, gradBound)
				}
				for group, dt := range got.dtypes {
					if dt != dtypes.Float32 {
						t.Errorf("%s is stored in %s, want the float32 master copy", group, dt)
					}
				}
			})
		}
	}
}

func rms(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}
