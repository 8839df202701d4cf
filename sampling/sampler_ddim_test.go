package sampling

import (
	"math"
	"testing"

	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/pipeline"
)

// TestSamplerDDIMStepsAreClosedForm samples the fixture's SD teacher with
// DDIM (2 steps: t = 501, 1) and checks every step the sampler took against
// the closed-form deterministic DDIM step from its own input z and
// predicted x0: eps = (z − √ā_t·x0)/√(1−ā_t), z_prev = √ā_prev·x0 + √(1−ā_prev)·eps,
// with ā_prev = ā[t − 500], and for the last step ā[0] (the teacher's
// set_alpha_to_one = false).
func TestSamplerDDIMStepsAreClosedForm(t *testing.T) {
	b, opts := testBackend(t)
	g := golden.Load(t, "tiny-sd-golden")
	p, err := pipeline.Load(g.TeacherDir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := lcm.ReadSchedulerConfig(p.SchedulerConfig)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := lcm.NewNoiseSchedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := newSampler(t, b, p, nil, nil, opts)
	res := sample(t, s, SampleRequest{Prompts: []string{"a cat", "a dog"}, Steps: 2, Guidance: 7.5, Scheduler: "ddim"})
	if len(res.Latents) != 2 || len(res.Denoised) != 2 {
		t.Fatalf("%d latents and %d denoised, want one per step", len(res.Latents), len(res.Denoised))
	}
	z := res.InitLatents
	for k, step := range res.Timesteps {
		at := float64(ac.AlphasCumprod[step])
		aPrev := float64(ac.AlphasCumprod[0])
		if prev := step - 500; prev >= 0 {
			aPrev = float64(ac.AlphasCumprod[prev])
		}
		x0, got := res.Denoised[k], res.Latents[k]
		worst := 0.0
		for i := range z {
			eps := (float64(z[i]) - math.Sqrt(at)*float64(x0[i])) / math.Sqrt(1-at)
			want := math.Sqrt(aPrev)*float64(x0[i]) + math.Sqrt(1-aPrev)*eps
			worst = max(worst, math.Abs(float64(got[i])-want))
		}
		t.Logf("step %d (t=%d, ā_t %.6g, ā_prev %.6g): max |z_prev − closed form| %.3g", k, step, at, aPrev, worst)
		if worst > 2e-5 {
			t.Errorf("step %d (t=%d): the sampler's DDIM step differs from the closed form by %.3g", k, step, worst)
		}
		z = got
	}
}
