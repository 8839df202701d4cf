package runner

import (
	"fmt"
	"math"
)

// LRMultiplier is diffusers' get_scheduler multiplier λ(step) for the
// learning-rate schedules golcm offers; step counts completed optimizer
// steps, so the first update uses λ(0) (REFERENCE-LCD §3.2).
func LRMultiplier(schedule string, step, warmup, total int) (float64, error) {
	s, w, t := float64(step), float64(warmup), float64(total)
	ramp := func() float64 { return s / math.Max(1, w) }
	switch schedule {
	case "constant":
		return 1, nil
	case "constant_with_warmup":
		if step < warmup {
			return ramp(), nil
		}
		return 1, nil
	case "linear":
		if step < warmup {
			return ramp(), nil
		}
		return math.Max(0, (t-s)/math.Max(1, t-w)), nil
	case "cosine":
		if step < warmup {
			return ramp(), nil
		}
		p := (s - w) / math.Max(1, t-w)
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*2*0.5*p))), nil
	}
	return 0, fmt.Errorf("optim.schedule = %q is not one of constant, constant_with_warmup, linear, cosine", schedule)
}
