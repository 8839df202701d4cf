package objectives

import (
	"math"
	"testing"
)

// TestEMADecayHandValues checks EMAModel.get_decay against values worked out by hand.
func TestEMADecayHandValues(t *testing.T) {
	warm := DefaultEMADecay()
	warm.UseWarmup = true
	linear := EMADecay{Decay: 0.9999, UseWarmup: true, InvGamma: 1, Power: 1}
	slow := EMADecay{Decay: 0.9999, UseWarmup: true, InvGamma: 2, Power: 1}
	late := warm
	late.UpdateAfterStep = 10
	floor := warm
	floor.MinDecay = 0.5
	for _, c := range []struct {
		name string
		e    EMADecay
		n    int
		want float64
	}{
		{"default, first step copies", DefaultEMADecay(), 1, 0},
		{"default, then constant", DefaultEMADecay(), 2, 0.9999},
		{"default, much later", DefaultEMADecay(), 100000, 0.9999},
		{"warmup 2/3, step 1", warm, 2, 1 - math.Pow(2, -2.0/3)},               // 0.370039...
		{"warmup 2/3, step 8", warm, 9, 1 - 1/math.Cbrt(81)},                   // 9^(2/3) = 81^(1/3)
		{"warmup 2/3, capped at decay", warm, 10_000_001, 0.9999},              // 1 - (1e7+1)^(-2/3) > 0.9999
		{"power 1: step/(1+step)", linear, 5, 0.8},                             // step 4
		{"inv_gamma 2: 1 - 1/(1 + step/2)", slow, 5, 2.0 / 3},                  // step 4
		{"update_after_step waits", late, 11, 0},                               // step 0
		{"update_after_step shifts", late, 12, 1 - math.Pow(2, -2.0/3)},        // step 1
		{"min_decay floors the warmup", floor, 2, 0.5},                         // 0.37 < 0.5
		{"min_decay does not touch the copy", floor, 1, 0},                     // step 0
		{"min_decay below warmup", floor, 9, math.Max(0.5, 1-1/math.Cbrt(81))}, // 0.7689
	} {
		if got := c.e.At(c.n); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: At(%d) = %.12g, want %.12g", c.name, c.n, got, c.want)
		}
	}
}

// TestEMADecayRejectsBadValues names the key.
func TestEMADecayRejectsBadValues(t *testing.T) {
	bad := []EMADecay{{Decay: 1.5}, {Decay: 0.9, MinDecay: 0.95}, {Decay: 0.9, UpdateAfterStep: -1},
		{Decay: 0.9, UseWarmup: true, InvGamma: 0, Power: 1}, {Decay: 0.9, UseWarmup: true, InvGamma: 1}}
	for _, e := range bad {
		if err := e.Validate(); err == nil {
			t.Errorf("%+v: want an error", e)
		}
	}
	if err := DefaultEMADecay().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
