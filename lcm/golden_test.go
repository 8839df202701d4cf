package lcm

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/golcm/golcm/internal/golden"
)

// The golden tests check every sched.*, pipe.w_embedding, unet.timestep_cond
// and host-computable lcd.* entry of every sidecar in the fixture folder
// ($GOLCM_GOLDEN_DIR, default ../shared/fixtures). Entries a sidecar lacks
// are skipped; a missing fixture folder skips the tests.

// lcdArgs is the part of a sidecar's "lcd" section these tests use.
type lcdArgs struct {
	Args struct {
		PretrainedTeacherModel string  `json:"pretrained_teacher_model"`
		NumDDIMTimesteps       int     `json:"num_ddim_timesteps"`
		WMin                   float64 `json:"w_min"`
		WMax                   float64 `json:"w_max"`
		TimestepScalingFactor  float64 `json:"timestep_scaling_factor"`
	} `json:"args"`
}

func readLCDArgs(t *testing.T, s *golden.Sidecar) lcdArgs {
	t.Helper()
	var a lcdArgs
	if err := json.Unmarshal(s.Raw["lcd"], &a); err != nil {
		t.Fatalf("golden %s: lcd section: %v", s.Name, err)
	}
	if a.Args.TimestepScalingFactor == 0 {
		a.Args.TimestepScalingFactor = DefaultTimestepScaling
	}
	return a
}

// schedulerConfigOf reads scheduler/scheduler_config.json of a model folder.
func schedulerConfigOf(t *testing.T, modelDir string) SchedulerConfig {
	t.Helper()
	cfg, err := ReadSchedulerConfig(filepath.Join(modelDir, "scheduler", "scheduler_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// teacherDir is where the LCD script loaded its DDPMScheduler from: the
// sidecar's teacher_dir, else the lcd args' pretrained_teacher_model next to
// the sidecar (tiny-sdxl's teacher is its own model folder).
func teacherDir(s *golden.Sidecar, a lcdArgs) string {
	if s.TeacherDir != "" {
		return s.TeacherDir
	}
	if a.Args.PretrainedTeacherModel != "" {
		return filepath.Join(s.Dir, a.Args.PretrainedTeacherModel)
	}
	return s.ModelDir
}

var timestepsEntry = regexp.MustCompile(`^sched\.timesteps_(\d+)_(\d+)$`)

func TestGoldenLCMScheduler(t *testing.T) {
	for _, s := range golden.Sidecars(t) {
		if len(s.EntryNames("sched.")) == 0 {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			sched, err := NewLCMScheduler(schedulerConfigOf(t, s.ModelDir))
			if err != nil {
				t.Fatal(err)
			}
			if s.Has("sched.alphas_cumprod") {
				s.CheckFloat32(t, "sched.alphas_cumprod", sched.Schedule.AlphasCumprod, []int{len(sched.Schedule.AlphasCumprod)})
			}
			for _, name := range s.EntryNames("sched.timesteps_") {
				m := timestepsEntry.FindStringSubmatch(name)
				if m == nil {
					t.Errorf("golden %s: cannot parse n and orig from %s", s.Name, name)
					continue
				}
				n, _ := strconv.Atoi(m[1])
				orig, _ := strconv.Atoi(m[2])
				if err := sched.SetTimesteps(n, orig, 1, nil); err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				s.CheckInt64(t, name, sched.Timesteps, []int{len(sched.Timesteps)})
			}
			if s.Has("sched.model_output") && s.Has("sched.sample0") {
				checkSchedulerSteps(t, s, sched)
			}
		})
	}
}

// checkSchedulerSteps replays the fixture's sampling loop: set_timesteps(4,
// original_inference_steps=50), then one Step per timestep on the same
// model_output, starting from sample0, with the recorded noise draws.
func checkSchedulerSteps(t *testing.T, s *golden.Sidecar, sched *LCMScheduler) {
	modelOutput, shape := s.Float32(t, "sched.model_output")
	sample, _ := s.Float32(t, "sched.sample0")
	if err := sched.SetTimesteps(4, 50, 1, nil); err != nil {
		t.Fatal(err)
	}
	for k, ts := range sched.Timesteps {
		prefix := fmt.Sprintf("sched.step%d.", k)
		if s.Has(prefix + "c_skip_c_out") {
			cSkip, cOut := sched.Scalings(ts)
			s.CheckFloat32(t, prefix+"c_skip_c_out", []float32{cSkip, cOut}, []int{2})
		}
		needsNoise, err := sched.NeedsNoise(ts)
		if err != nil {
			t.Fatal(err)
		}
		var noise []float32
		if needsNoise {
			if !s.Has(prefix + "noise") {
				t.Fatalf("golden %s: step %d (t=%d) re-noises but there is no %snoise", s.Name, k, ts, prefix)
			}
			noise, _ = s.Float32(t, prefix+"noise")
		} else if s.Has(prefix + "noise") {
			t.Errorf("golden %s: step %d (t=%d) is the last and draws no noise, but %snoise exists", s.Name, k, ts, prefix)
		}
		prev, denoised, err := sched.Step(modelOutput, sample, ts, noise)
		if err != nil {
			t.Fatal(err)
		}
		if s.Has(prefix + "denoised") {
			s.CheckFloat32(t, prefix+"denoised", denoised, shape)
		}
		if s.Has(prefix + "prev_sample") {
			s.CheckFloat32(t, prefix+"prev_sample", prev, shape)
		}
		sample = prev // our own chain, not the fixture's: errors would accumulate
	}
}

func TestGoldenPipelineTimesteps(t *testing.T) {
	for _, s := range golden.Sidecars(t) {
		raw, ok := s.Raw["pipe_call"]
		if !ok || string(raw) == "null" {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			var call struct {
				NumInferenceSteps      int     `json:"num_inference_steps"`
				OriginalInferenceSteps int     `json:"original_inference_steps"`
				Timesteps              []int64 `json:"timesteps"`
			}
			if err := json.Unmarshal(raw, &call); err != nil {
				t.Fatal(err)
			}
			sched, err := NewLCMScheduler(schedulerConfigOf(t, s.ModelDir))
			if err != nil {
				t.Fatal(err)
			}
			if err := sched.SetTimesteps(call.NumInferenceSteps, call.OriginalInferenceSteps, 1, nil); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(sched.Timesteps) != fmt.Sprint(call.Timesteps) {
				t.Errorf("pipe_call timesteps: got %v, want %v", sched.Timesteps, call.Timesteps)
			}
			golden.Compared(t)
		})
	}
}

func TestGoldenGuidanceEmbeddings(t *testing.T) {
	for _, s := range golden.Sidecars(t) {
		t.Run(s.Name, func(t *testing.T) {
			// embedding entry -> guidance-scale entry it embeds
			for entry, wEntry := range map[string]string{"unet.timestep_cond": "unet.w", "lcd.w_embedding": "lcd.w"} {
				if !s.Has(entry) || !s.Has(wEntry) {
					continue
				}
				w, _ := s.Float32(t, wEntry)
				shape := s.Entries[entry].Shape
				s.CheckFloat32(t, entry, GuidanceEmbedding(w, shape[1]), shape)
			}
			if s.Has("pipe.w_embedding") {
				var call struct {
					GuidanceScale float64 `json:"guidance_scale"`
				}
				if err := json.Unmarshal(s.Raw["pipe_call"], &call); err != nil || call.GuidanceScale == 0 {
					t.Fatalf("golden %s: pipe_call has no guidance_scale (%v)", s.Name, err)
				}
				shape := s.Entries["pipe.w_embedding"].Shape
				w := make([]float32, shape[0])
				for i := range w {
					w[i] = float32(call.GuidanceScale - 1) // torch.tensor(guidance_scale - 1)
				}
				// An input entry (no tolerance): torch's sin/cos are within an
				// ulp of ours, so compare at lcd.w_embedding's closed-form 1e-6.
				s.CheckFloat32Tol(t, "pipe.w_embedding", GuidanceEmbedding(w, shape[1]), shape, golden.Tol{Atol: 1e-6})
			}
		})
	}
}

// TestGoldenLCDScalars checks the per-sample numbers of the distillation
// step: w from u, the solver grid and timesteps from the index, and the
// boundary scalings at both ends.
func TestGoldenLCDScalars(t *testing.T) {
	for _, s := range golden.Sidecars(t) {
		if !s.Has("lcd.index") {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			a := readLCDArgs(t, s)
			schedule, err := NewNoiseSchedule(schedulerConfigOf(t, teacherDir(s, a)))
			if err != nil {
				t.Fatal(err)
			}
			solver, err := NewDDIMSolver(schedule, a.Args.NumDDIMTimesteps)
			if err != nil {
				t.Fatal(err)
			}
			if s.Has("lcd.solver.ddim_timesteps") {
				s.CheckInt64(t, "lcd.solver.ddim_timesteps", solver.Timesteps, []int{len(solver.Timesteps)})
			}
			if s.Has("lcd.u") && s.Has("lcd.w") {
				u, shape := s.Float32(t, "lcd.u")
				w := make([]float32, len(u))
				for i := range u {
					w[i] = GuidanceScale(u[i], a.Args.WMin, a.Args.WMax)
				}
				s.CheckFloat32(t, "lcd.w", w, shape)
			}
			index, shape := s.Int64(t, "lcd.index")
			B := len(index)
			starts, ends := make([]int64, B), make([]int64, B)
			scal := map[string][]float32{}
			for b, n := range index {
				starts[b], ends[b] = solver.StartAndEnd(int(n))
				scaling := float32(a.Args.TimestepScalingFactor)
				cs, co := BoundaryScalings(starts[b], scaling)
				scal["lcd.c_skip_start"] = append(scal["lcd.c_skip_start"], cs)
				scal["lcd.c_out_start"] = append(scal["lcd.c_out_start"], co)
				cs, co = BoundaryScalings(ends[b], scaling)
				scal["lcd.c_skip"] = append(scal["lcd.c_skip"], cs)
				scal["lcd.c_out"] = append(scal["lcd.c_out"], co)
			}
			for name, got := range map[string][]int64{"lcd.start_timesteps": starts, "lcd.timesteps": ends} {
				if s.Has(name) {
					s.CheckInt64(t, name, got, shape)
				}
			}
			for name, got := range scal {
				if s.Has(name) {
					s.CheckFloat32(t, name, got, shape)
				}
			}
		})
	}
}

// TestGoldenLCDHostMath recomputes the elementwise parts of the distillation
// step from the fixture's network outputs: forward noising, the teacher's
// x0/eps with guidance, the DDIM step, and the boundary condition for the
// student's prediction and the target. The graph version must agree with
// these host functions.
func TestGoldenLCDHostMath(t *testing.T) {
	needs := []string{"lcd.index", "lcd.latents", "lcd.noise", "lcd.w", "lcd.noisy_model_input",
		"lcd.cond_teacher_output", "lcd.uncond_teacher_output", "lcd.pred_x0", "lcd.pred_noise",
		"lcd.x_prev", "lcd.noise_pred", "lcd.model_pred", "lcd.target_noise_pred", "lcd.target"}
	for _, s := range golden.Sidecars(t) {
		if !hasAll(s, needs) {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			a := readLCDArgs(t, s)
			schedule, err := NewNoiseSchedule(schedulerConfigOf(t, teacherDir(s, a)))
			if err != nil {
				t.Fatal(err)
			}
			solver, err := NewDDIMSolver(schedule, a.Args.NumDDIMTimesteps)
			if err != nil {
				t.Fatal(err)
			}
			scaling := float32(a.Args.TimestepScalingFactor)
			pred := schedule.PredictionType
			index, _ := s.Int64(t, "lcd.index")
			w, _ := s.Float32(t, "lcd.w")
			in := map[string][]float32{}
			var shape []int
			for _, name := range needs[1:] {
				in[name], shape = s.Float32(t, name)
			}
			size := len(in["lcd.latents"]) / len(index)
			row := func(name string, b int) []float32 { return in[name][b*size : (b+1)*size] }
			out := map[string][]float32{}
			for b, n := range index {
				start, end := solver.StartAndEnd(int(n))
				// Inputs from the fixture at every stage, so each check stands alone.
				z := row("lcd.noisy_model_input", b)
				out["lcd.noisy_model_input"] = append(out["lcd.noisy_model_input"], schedule.AddNoise(row("lcd.latents", b), row("lcd.noise", b), start)...)

				aS, sS := schedule.Alpha(start), schedule.Sigma(start)
				condX0 := must(PredictedX0(row("lcd.cond_teacher_output", b), z, aS, sS, pred))
				uncondX0 := must(PredictedX0(row("lcd.uncond_teacher_output", b), z, aS, sS, pred))
				condEps := must(PredictedEps(row("lcd.cond_teacher_output", b), z, aS, sS, pred))
				uncondEps := must(PredictedEps(row("lcd.uncond_teacher_output", b), z, aS, sS, pred))
				out["lcd.pred_x0"] = append(out["lcd.pred_x0"], ApplyGuidance(condX0, uncondX0, w[b])...)
				out["lcd.pred_noise"] = append(out["lcd.pred_noise"], ApplyGuidance(condEps, uncondEps, w[b])...)
				out["lcd.x_prev"] = append(out["lcd.x_prev"], solver.Step(row("lcd.pred_x0", b), row("lcd.pred_noise", b), int(n))...)

				cs, co := BoundaryScalings(start, scaling)
				studentX0 := must(PredictedX0(row("lcd.noise_pred", b), z, aS, sS, pred))
				out["lcd.model_pred"] = append(out["lcd.model_pred"], ConsistencyOutput(z, studentX0, cs, co)...)

				xPrev := row("lcd.x_prev", b)
				cs, co = BoundaryScalings(end, scaling)
				targetX0 := must(PredictedX0(row("lcd.target_noise_pred", b), xPrev, schedule.Alpha(end), schedule.Sigma(end), pred))
				out["lcd.target"] = append(out["lcd.target"], ConsistencyOutput(xPrev, targetX0, cs, co)...)
			}
			for _, name := range []string{"lcd.noisy_model_input", "lcd.pred_x0", "lcd.pred_noise", "lcd.x_prev", "lcd.model_pred", "lcd.target"} {
				s.CheckFloat32(t, name, out[name], shape)
			}
		})
	}
}

func hasAll(s *golden.Sidecar, names []string) bool {
	for _, n := range names {
		if !s.Has(n) {
			return false
		}
	}
	return true
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
