package lcm

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// stepArgs are the optimizer and loss arguments of the recorded LCD step.
type stepArgs struct {
	Args struct {
		HuberC          float64 `json:"huber_c"`
		MaxGradNorm     float64 `json:"max_grad_norm"`
		EMADecay        float64 `json:"ema_decay"`
		LearningRate    float64 `json:"learning_rate"`
		Beta1           float64 `json:"adam_beta1"`
		Beta2           float64 `json:"adam_beta2"`
		WeightDecay     float64 `json:"adam_weight_decay"`
		Eps             float64 `json:"adam_epsilon"`
		TimeCondProjDim int     `json:"unet_time_cond_proj_dim"`
	} `json:"args"`
	PredictionType string `json:"prediction_type"`
}

func zerosTensor(dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return tensors.FromFlatDataAndDimensions(make([]float32, n), dims...)
}

// TestGoldenDistillationStep replays the recorded full-distillation step of
// every sidecar (SD and SDXL, both losses) and checks every intermediate,
// the loss, the gradient norm and clipped gradients, and every student and
// target parameter after one AdamW + EMA update.
func TestGoldenDistillationStep(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range golden.Sidecars(t) {
		if !s.Has("lcd.latents") {
			continue
		}
		f := loadLCDFixture(t, s)
		sa, schedule, teacher := f.step, f.schedule, f.teacher
		for _, loss := range []losses.Kind{losses.L2, losses.Huber} {
			t.Run(s.Name+"/"+string(loss), func(t *testing.T) {
				student, err := teacher.Weights.Clone()
				if err != nil {
					t.Fatal(err)
				}
				cond, condShape := s.Float32(t, "lcd.student_init.time_embedding.cond_proj.weight")
				student.SetFloat32("time_embedding.cond_proj.weight", cond, condShape...)
				studentCfg := *teacher.Config
				dim := condShape[1]
				studentCfg.TimeCondProjDim = &dim

				run := func(dtype dtypes.DType) map[string]*tensors.Tensor {
					cfg := DistillConfig{
						Mode: Full, Teacher: teacher.Config, Student: &studentCfg,
						PredictionType: schedule.PredictionType, Loss: loss, HuberC: sa.Args.HuberC,
						MaxGradNorm: sa.Args.MaxGradNorm, Beta1: sa.Args.Beta1, Beta2: sa.Args.Beta2,
						AdamEps: sa.Args.Eps, WeightDecay: sa.Args.WeightDecay, EMADecay: sa.Args.EMADecay,
						NN: nn.Options{ConvIm2Col: true, ComputeDType: dtype}, Debug: true,
					}
					own, err := student.Clone() // the distiller updates its student in place
					if err != nil {
						t.Fatal(err)
					}
					d, err := NewDistiller(b, cfg, teacher.Weights, own)
					if err != nil {
						t.Fatal(err)
					}
					res, err := d.Step(f.batch(t, dim))
					if err != nil {
						t.Fatal(err)
					}
					if !res.WeightsFinite {
						t.Error("the step reports non-finite weights")
					}
					return stepEntries(s, loss, d, res)
				}
				// float64 shows the method is exact; the float32 run measures
				// how much float32 rounding alone moves each value. Where the
				// fixture's tolerance is tighter than that (the huber
				// gradients: d/sqrt(d²+c²) with c = 0.001 amplifies rounding),
				// the measured float32 noise is added to it.
				exact, rounded := run(dtypes.Float64), run(dtypes.Float32)
				checked := 0
				for _, entry := range sortedKeys(exact) {
					got, dims, err := nn.TensorFloat32(exact[entry])
					if err != nil {
						t.Fatal(err)
					}
					noisy, _, _ := nn.TensorFloat32(rounded[entry])
					tol := s.Entries[entry].Tol
					tol.Atol += golden.MaxAbsDiff(got, noisy)
					s.CheckFloat32Tol(t, entry, got, dims, tol)
					if strings.Contains(entry, "_after.") {
						checked++
					}
				}
				if want := 2 * student.Len(); checked != want {
					t.Errorf("checked %d parameters after the step, want %d (every student and target weight)", checked, want)
				}
			})
		}
	}
}

// batch assembles the recorded step's batch and coefficients for a student
// with a guidance embedding of width dim (0: none).
func (f *lcdFixture) batch(t *testing.T, dim int) *Batch {
	s, a := f.sidecar, f.args
	index, _ := s.Int64(t, "lcd.index")
	u, _ := s.Float32(t, "lcd.u")
	coefs, err := Coefficients(f.schedule, f.solver, Draws{Index: index, U: u},
		a.Args.WMin, a.Args.WMax, a.Args.TimestepScalingFactor, dim)
	if err != nil {
		t.Fatal(err)
	}
	batch := &Batch{
		Latents: s.Tensor(t, "lcd.latents"), Noise: s.Tensor(t, "lcd.noise"),
		PromptEmbeds: s.Tensor(t, "lcd.prompt_embeds"),
		Coefs:        coefs, LR: f.step.Args.LearningRate,
	}
	if s.Has("lcd.uncond_prompt_embeds") {
		batch.UncondEmbeds = s.Tensor(t, "lcd.uncond_prompt_embeds")
	} else {
		// SDXL: the script's unconditional embeddings are zeros.
		batch.UncondEmbeds = zerosTensor(batch.PromptEmbeds.Shape().Dimensions...)
	}
	if f.teacher.Config.TextTime() {
		batch.TextEmbeds = s.Tensor(t, "lcd.text_embeds")
		batch.UncondTextEmbeds = zerosTensor(batch.TextEmbeds.Shape().Dimensions...)
		batch.TimeIDs = s.Tensor(t, "lcd.time_ids")
	}
	return batch
}

// stepEntries maps every fixture entry of the step to the value computed.
func stepEntries(s *golden.Sidecar, loss losses.Kind, d *Distiller, res *StepResult) map[string]*tensors.Tensor {
	out := map[string]*tensors.Tensor{}
	for name, v := range res.Debug {
		if entry := "lcd." + name; !strings.HasPrefix(name, "grad.") && s.Has(entry) {
			out[entry] = v
		}
	}
	prefix := "lcd." + string(loss) + "."
	out[prefix+"loss"] = tensors.FromFlatDataAndDimensions([]float32{res.Loss}, 1)
	out[prefix+"grad_norm"] = tensors.FromFlatDataAndDimensions([]float32{res.GradNorm}, 1)
	for _, entry := range s.EntryNames(prefix + "grad.") {
		out[entry] = res.Debug["grad."+strings.TrimPrefix(entry, prefix+"grad.")]
	}
	for kind, w := range map[string]*nn.Weights{"student_after.": d.Student, "target_after.": d.Target} {
		for _, entry := range s.EntryNames(prefix + kind) {
			if got, ok := w.Get(strings.TrimPrefix(entry, prefix+kind)); ok {
				out[entry] = got
			}
		}
	}
	return out
}

func sortedKeys(m map[string]*tensors.Tensor) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lcdFixture is what a sidecar's recorded LCD step needs: its arguments,
// the teacher folder, and the schedule and solver built from it.
type lcdFixture struct {
	sidecar  *golden.Sidecar
	args     lcdArgs
	step     stepArgs
	teacher  *unet.Model
	schedule *NoiseSchedule
	solver   *DDIMSolver
}

func loadLCDFixture(t *testing.T, s *golden.Sidecar) *lcdFixture {
	t.Helper()
	f := &lcdFixture{sidecar: s, args: readLCDArgs(t, s)}
	if err := json.Unmarshal(s.Raw["lcd"], &f.step); err != nil {
		t.Fatal(err)
	}
	dir := teacherDir(s, f.args)
	var err error
	if f.teacher, err = unet.Load(filepath.Join(dir, "unet"), ""); err != nil {
		t.Fatal(err)
	}
	if f.schedule, err = NewNoiseSchedule(schedulerConfigOf(t, dir)); err != nil {
		t.Fatal(err)
	}
	if f.step.PredictionType != "" {
		f.schedule.PredictionType = PredictionType(f.step.PredictionType)
	}
	if f.solver, err = NewDDIMSolver(f.schedule, f.args.Args.NumDDIMTimesteps); err != nil {
		t.Fatal(err)
	}
	return f
}
