package lcm

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func newLCMScheduler(t *testing.T) *LCMScheduler {
	t.Helper()
	s, err := NewLCMScheduler(DefaultSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// REFERENCE-LCD §9.1's schedules for T=1000, original_inference_steps=50.
func TestLCMSchedulerTimestepsMatchDiffusers(t *testing.T) {
	s := newLCMScheduler(t)
	for _, c := range []struct {
		n        int
		strength float64
		want     string
	}{
		{1, 1, "[999]"},
		{2, 1, "[999 499]"},
		{3, 1, "[999 679 339]"},
		{4, 1, "[999 759 499 259]"},
		{5, 1, "[999 799 599 399 199]"},
		{6, 1, "[999 839 679 499 339 179]"},
		{8, 1, "[999 879 759 639 499 379 259 139]"},
		{4, 0.5, "[499 379 259 139]"}, // img2img: origin has 25 entries
		{50, 1, fmt.Sprint(descendingGrid(50, 20))},
	} {
		if err := s.SetTimesteps(c.n, 0, c.strength, nil); err != nil {
			t.Fatalf("n=%d strength=%g: %v", c.n, c.strength, err)
		}
		if got := fmt.Sprint(s.Timesteps); got != c.want || s.NumInferenceSteps != c.n {
			t.Errorf("n=%d strength=%g: %s (%d steps), want %s", c.n, c.strength, got, s.NumInferenceSteps, c.want)
		}
	}
	// strength is a Python float: int(50 * 0.7) is 35, not 34.
	if err := s.SetTimesteps(35, 0, 0.7, nil); err != nil {
		t.Errorf("35 steps at strength 0.7: %v", err)
	}
}

func descendingGrid(n, k int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64((n-i)*k - 1)
	}
	return out
}

func TestLCMSchedulerRefusesWhatDiffusersRefuses(t *testing.T) {
	s := newLCMScheduler(t)
	for _, c := range []struct {
		name     string
		n, orig  int
		strength float64
		custom   []int64
		want     string
	}{
		{"neither", 0, 0, 1, nil, "got neither"},
		{"both", 4, 0, 1, []int64{999}, "got both"},
		{"orig above T", 4, 1001, 1, nil, "original_inference_steps 1001 cannot be larger than num_train_timesteps 1000"},
		{"n above T", 1001, 1000, 1, nil, "num_inference_steps 1001 cannot be larger than num_train_timesteps"},
		{"n above orig", 51, 50, 1, nil, "num_inference_steps 51 cannot be larger than original_inference_steps 50: the inference timesteps are a subset of that grid; use at most 50 steps, or an original_inference_steps of at least 51"},
		{"n above orig·strength", 30, 50, 0.5, nil, "= 25 grid points is fewer than num_inference_steps 30; use at most 25 steps or raise strength to at least 0.6"},
		{"n above orig, strength 2", 60, 50, 2, nil, "num_inference_steps 60 cannot be larger than original_inference_steps 50"},
		{"custom ascending", 0, 0, 1, []int64{999, 499, 499}, "descending order"},
		{"custom past T", 0, 0, 1, []int64{1000, 499}, "must start before num_train_timesteps 1000"},
		{"custom empty", 0, 0, 1, []int64{}, "empty"},
	} {
		before := fmt.Sprint(s.Timesteps, s.NumInferenceSteps)
		err := s.SetTimesteps(c.n, c.orig, c.strength, c.custom)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to say %q", c.name, err, c.want)
		}
		if after := fmt.Sprint(s.Timesteps, s.NumInferenceSteps); after != before {
			t.Errorf("%s: a refused SetTimesteps changed the schedule to %s", c.name, after)
		}
	}
}

func TestLCMSchedulerCustomTimesteps(t *testing.T) {
	s := newLCMScheduler(t)
	if err := s.SetTimesteps(0, 0, 1, []int64{999, 500, 259}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.Timesteps) != "[999 500 259]" || s.NumInferenceSteps != 3 || len(s.Warnings) != 1 ||
		!strings.Contains(s.Warnings[0], "[500]") {
		t.Errorf("timesteps %v steps %d warnings %q", s.Timesteps, s.NumInferenceSteps, s.Warnings)
	}
	// strength 0.5 keeps the last int(4·0.5) = 2, but num_inference_steps stays 4
	// (diffusers' TODO), so its last step still re-noises. The grid check
	// uses the strength-cut grid 19..499, so 759 counts as off the grid.
	if err := s.SetTimesteps(0, 0, 0.5, []int64{999, 759, 499, 259}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(s.Timesteps) != "[499 259]" || s.NumInferenceSteps != 4 || len(s.Warnings) != 1 ||
		!strings.Contains(s.Warnings[0], "[759]") {
		t.Errorf("timesteps %v steps %d warnings %q", s.Timesteps, s.NumInferenceSteps, s.Warnings)
	}
	if needs, err := s.NeedsNoise(259); err != nil || !needs {
		t.Errorf("NeedsNoise(259) = %v, %v; diffusers re-noises there", needs, err)
	}
}

// A 4-step run: noise on every step but the last; each step re-noises the
// denoised sample to the next timestep; the last returns denoised itself.
func TestLCMSchedulerStepRenoisesToTheNextTimestep(t *testing.T) {
	s := newLCMScheduler(t) // set_alpha_to_one by default
	if _, _, err := s.Step([]float32{0}, []float32{0}, 999, []float32{0}); err == nil {
		t.Fatal("Step before SetTimesteps worked")
	}
	if err := s.SetTimesteps(4, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	model := []float32{0.1, -0.2, 0.3}
	sample := []float32{1, -1, 0.5}
	noise := []float32{0.7, 0.1, -0.4}
	if _, _, err := s.Step(model, sample, 123, noise); err == nil || !strings.Contains(err.Error(), "not in the schedule") {
		t.Errorf("unknown timestep: %v", err)
	}
	if _, _, err := s.Step(model, sample, 999, nil); err == nil || !strings.Contains(err.Error(), "needs 3 noise values") {
		t.Errorf("missing noise: %v", err)
	}
	for k, ts := range s.Timesteps {
		needs, err := s.NeedsNoise(ts)
		if err != nil || needs != (k < 3) {
			t.Fatalf("step %d: NeedsNoise = %v, %v", k, needs, err)
		}
		var n []float32
		if needs {
			n = noise
		}
		prev, denoised, err := s.Step(model, sample, ts, n)
		if err != nil {
			t.Fatal(err)
		}
		cSkip, cOut := s.Scalings(ts)
		x0, _ := PredictedX0(model, sample, s.Schedule.Alpha(ts), s.Schedule.Sigma(ts), PredictEpsilon)
		wantDenoised := ConsistencyOutput(sample, x0, cSkip, cOut)
		wantPrev := wantDenoised
		if k < 3 {
			wantPrev = s.Schedule.AddNoise(wantDenoised, noise, s.Timesteps[k+1])
		}
		if fmt.Sprint(denoised) != fmt.Sprint(wantDenoised) || fmt.Sprint(prev) != fmt.Sprint(wantPrev) {
			t.Errorf("step %d (t=%d): prev %v denoised %v, want %v %v", k, ts, prev, denoised, wantPrev, wantDenoised)
		}
		if i, ok := s.StepIndex(); !ok || i != k+1 {
			t.Errorf("after step %d the step index is %d, %v", k, i, ok)
		}
		sample = prev
	}
}

func TestLCMSchedulerClipsAndRefusesThresholding(t *testing.T) {
	cfg := DefaultSchedulerConfig()
	cfg.ClipSample, cfg.ClipSampleRange = true, 0.5
	cfg.PredictionType = string(PredictSample)
	s, err := NewLCMScheduler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(1, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	// One step at t=999: c_out ≈ 1, c_skip ≈ 2.5e-9, x0 = clamp(model output).
	_, denoised, err := s.Step([]float32{3, -3, 0.25}, []float32{0, 0, 0}, 999, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{0.5, -0.5, 0.25} {
		if math.Abs(float64(denoised[i])-want) > 1e-6 {
			t.Errorf("denoised %v, want x0 clipped to ±0.5", denoised)
			break
		}
	}
	cfg.Thresholding = true
	if _, err := NewLCMScheduler(cfg); err == nil || !strings.Contains(err.Error(), "thresholding") {
		t.Errorf("thresholding accepted: %v", err)
	}
}

func TestLCMSchedulerBeginIndexFixesTheFirstStep(t *testing.T) {
	s := newLCMScheduler(t)
	if err := s.SetTimesteps(4, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	s.SetBeginIndex(2)
	if needs, err := s.NeedsNoise(12345); err != nil || !needs {
		t.Errorf("with begin index 2 of 4, NeedsNoise = %v, %v", needs, err)
	}
	if _, ok := s.StepIndex(); ok {
		t.Error("step index set before the first Step")
	}
	if _, _, err := s.Step([]float32{0}, []float32{0}, 499, []float32{0}); err != nil {
		t.Fatal(err)
	}
	if i, _ := s.StepIndex(); i != 3 {
		t.Errorf("step index %d after starting at 2", i)
	}
	if err := s.SetTimesteps(4, 0, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.StepIndex(); ok {
		t.Error("SetTimesteps kept the step index")
	}
}
