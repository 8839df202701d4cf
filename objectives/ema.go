package objectives

import (
	"fmt"
	"math"
)

// EMADecay is the decay schedule of diffusers' EMAModel (training_utils.py), which
// train_text_to_image.py's --use_ema keeps of the UNet: after optimisation step n the shadow weights
// move as shadow -= (1 - decay(n))·(shadow - weights).
type EMADecay struct {
	Decay           float64 // the largest decay (0.9999)
	MinDecay        float64 // the smallest decay after the first updates (0)
	UpdateAfterStep int     // steps before the average starts moving (0)
	UseWarmup       bool    // ramp the decay up as 1 - (1 + step/InvGamma)^-Power
	InvGamma        float64 // the warmup's inverse multiplicative factor (1)
	Power           float64 // the warmup's exponent (2/3)
}

// DefaultEMADecay returns EMAModel's defaults.
func DefaultEMADecay() EMADecay {
	return EMADecay{Decay: 0.9999, InvGamma: 1, Power: 2.0 / 3}
}

// Validate checks the schedule.
func (e EMADecay) Validate() error {
	switch {
	case !(e.Decay >= 0 && e.Decay <= 1):
		return fmt.Errorf("ema: decay is %g, want 0 to 1", e.Decay)
	case !(e.MinDecay >= 0 && e.MinDecay <= e.Decay):
		return fmt.Errorf("ema: min_decay is %g, want 0 to decay (%g)", e.MinDecay, e.Decay)
	case e.UpdateAfterStep < 0:
		return fmt.Errorf("ema: update_after_step is %d, want 0 or more", e.UpdateAfterStep)
	case e.UseWarmup && !(e.InvGamma > 0):
		return fmt.Errorf("ema: inv_gamma is %g, want more than 0", e.InvGamma)
	case e.UseWarmup && !(e.Power > 0):
		return fmt.Errorf("ema: power is %g, want more than 0", e.Power)
	}
	return nil
}

// At is EMAModel.get_decay(n) for optimisation step n, counted from 1 as EMAModel.step counts
// (it increments optimization_step before asking): 0 (the shadow copies the weights) while
// n <= UpdateAfterStep + 1, then the warmup value or Decay, clamped to [MinDecay, Decay].
//
// Without warmup this is diffusers' current behaviour (since v0.32, PR #9812): a constant Decay.
// Older releases, 0.26.3 among them, ramped (1 + step)/(10 + step) even without use_ema_warmup;
// UseWarmup with InvGamma 1 and Power 1 gives a similar ramp, 1 - 1/(1 + step).
func (e EMADecay) At(n int) float64 {
	step := max(0, n-e.UpdateAfterStep-1)
	if step <= 0 {
		return 0
	}
	d := e.Decay
	if e.UseWarmup {
		d = min(1-math.Pow(1+float64(step)/e.InvGamma, -e.Power), e.Decay)
	}
	return max(d, e.MinDecay)
}
