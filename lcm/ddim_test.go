package lcm

import (
	"slices"
	"testing"
)

// TestDDIMTimesteps: SD's scheduler config (steps_offset 1, leading
// spacing) gives diffusers' DDIM timesteps 981, 961, ..., 1 for 50 steps.
func TestDDIMTimesteps(t *testing.T) {
	cfg := DefaultSchedulerConfig()
	cfg.StepsOffset = 1
	s, err := NewDDIMScheduler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(50, 1); err != nil {
		t.Fatal(err)
	}
	if len(s.Timesteps) != 50 || s.Timesteps[0] != 981 || s.Timesteps[1] != 961 || s.Timesteps[49] != 1 {
		t.Fatalf("timesteps %v", s.Timesteps)
	}
	if err := s.SetTimesteps(4, 0.5); err != nil {
		t.Fatal(err)
	}
	if want := []int64{501, 251, 1}; !slices.Equal(s.Timesteps, want[1:]) {
		t.Fatalf("strength 0.5 of 4 steps: %v, want %v", s.Timesteps, want[1:])
	}
}

// TestDDIMStepRecoversCleanSample: with the exact noise as the model's
// epsilon prediction, one step from t lands on the noised sample at t - T/n
// and predicts x0 exactly (up to float32 rounding).
func TestDDIMStepRecoversCleanSample(t *testing.T) {
	s, err := NewDDIMScheduler(DefaultSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTimesteps(10, 1); err != nil {
		t.Fatal(err)
	}
	x0 := []float32{0.5, -0.25, 1, 0}
	eps := []float32{1, -1, 0.5, 2}
	tt := s.Timesteps[0]
	z := s.Schedule.AddNoise(x0, eps, tt)
	prev, gotX0, err := s.Step(eps, z, tt)
	if err != nil {
		t.Fatal(err)
	}
	want := s.Schedule.AddNoise(x0, eps, tt-100)
	for i := range x0 {
		if d := gotX0[i] - x0[i]; d > 1e-5 || d < -1e-5 {
			t.Errorf("x0[%d] = %v, want %v", i, gotX0[i], x0[i])
		}
		if d := prev[i] - want[i]; d > 1e-5 || d < -1e-5 {
			t.Errorf("prev[%d] = %v, want %v", i, prev[i], want[i])
		}
	}
}
