package lcm

import (
	"fmt"
	"math"
)

// DDIMScheduler is diffusers' DDIMScheduler with eta = 0 (deterministic),
// for sampling a teacher the way its own pipeline does: "leading" timestep
// spacing, t_i = i·(T/n) + steps_offset reversed, and
// x_prev = sqrt(a_prev)·x0 + sqrt(1-a_prev)·eps. The DDIM solver of
// distillation (solver.go) is the same step on the LCD grid.
type DDIMScheduler struct {
	Config    SchedulerConfig
	Schedule  *NoiseSchedule
	Timesteps []int64
	ratio     int64
	final     float32 // alphas_cumprod past the last step
}

// NewDDIMScheduler builds the scheduler from a teacher's scheduler config
// (as DDIMScheduler.from_config does).
func NewDDIMScheduler(cfg SchedulerConfig) (*DDIMScheduler, error) {
	schedule, err := NewNoiseSchedule(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.TimestepSpacing != "" && cfg.TimestepSpacing != "leading" {
		return nil, fmt.Errorf("%s: ddim: timestep_spacing %q is not supported (want leading)", cfg.where(), cfg.TimestepSpacing)
	}
	final := schedule.AlphasCumprod[0]
	if cfg.SetAlphaToOne {
		final = 1
	}
	return &DDIMScheduler{Config: cfg, Schedule: schedule, final: final}, nil
}

// SetTimesteps picks n timesteps; strength < 1 keeps the last
// n·strength of them (image to image), as diffusers' img2img pipelines do.
func (s *DDIMScheduler) SetTimesteps(n int, strength float64) error {
	T := s.Schedule.NumTrainTimesteps
	if n < 1 || n > T {
		return fmt.Errorf("ddim: num_inference_steps is %d, want 1..%d", n, T)
	}
	s.ratio = int64(T / n)
	all := make([]int64, n)
	for i := range n {
		all[n-1-i] = int64(i)*s.ratio + int64(s.Config.StepsOffset)
	}
	keep := min(int(float64(n)*strength), n)
	if keep < 1 {
		return fmt.Errorf("ddim: strength %v leaves no steps out of %d", strength, n)
	}
	s.Timesteps = all[n-keep:]
	return nil
}

// Step is one deterministic DDIM step from t; it returns the previous
// sample and the predicted x0.
func (s *DDIMScheduler) Step(modelOutput, sample []float32, t int64) (prev, x0 []float32, err error) {
	if t < 0 || int(t) >= len(s.Schedule.AlphasCumprod) {
		return nil, nil, fmt.Errorf("ddim: timestep %d out of range", t)
	}
	at := s.Schedule.AlphasCumprod[t]
	aPrev := s.final
	if p := t - s.ratio; p >= 0 {
		aPrev = s.Schedule.AlphasCumprod[p]
	}
	alpha, sigma := sqrt32(at), sqrt32(1-at)
	if x0, err = PredictedX0(modelOutput, sample, alpha, sigma, s.Schedule.PredictionType); err != nil {
		return nil, nil, err
	}
	eps, err := PredictedEps(modelOutput, sample, alpha, sigma, s.Schedule.PredictionType)
	if err != nil {
		return nil, nil, err
	}
	if s.Config.ClipSample {
		r := float32(s.Config.ClipSampleRange)
		for i := range x0 {
			x0[i] = min(max(x0[i], -r), r)
		}
	}
	a, b := float32(math.Sqrt(float64(aPrev))), float32(math.Sqrt(float64(1-aPrev)))
	prev = make([]float32, len(sample))
	for i := range prev {
		prev[i] = float32(a*x0[i]) + float32(b*eps[i])
	}
	return prev, x0, nil
}
