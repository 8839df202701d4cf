package lcm

import (
	"math"
	"strings"
	"testing"
)

// For z = a·x0 + s·eps, each parameterisation's target converts back to x0 and eps.
func TestPredictionConversionsInvertTheForwardProcess(t *testing.T) {
	s := sdSchedule(t)
	x0 := []float32{0.5, -1.25, 2, 0}
	eps := []float32{1, 0.3, -0.7, -2}
	for _, ts := range []int64{19, 499, 999} {
		a, sg := s.Alpha(ts), s.Sigma(ts)
		z := s.AddNoise(x0, eps, ts)
		v := make([]float32, len(x0))
		for i := range v {
			v[i] = a*eps[i] - sg*x0[i]
		}
		for pred, out := range map[PredictionType][]float32{PredictEpsilon: eps, PredictSample: x0, PredictV: v} {
			gotX0, err := PredictedX0(out, z, a, sg, pred)
			if err != nil {
				t.Fatal(err)
			}
			gotEps, err := PredictedEps(out, z, a, sg, pred)
			if err != nil {
				t.Fatal(err)
			}
			// Dividing by a(999) ≈ 0.07 or s(19) ≈ 0.13 magnifies rounding.
			for i := range x0 {
				if math.Abs(float64(gotX0[i]-x0[i])) > 1e-5 || math.Abs(float64(gotEps[i]-eps[i])) > 1e-5 {
					t.Errorf("t=%d %s: x0 %v eps %v, want %v %v", ts, pred, gotX0, gotEps, x0, eps)
					break
				}
			}
		}
	}
}

func TestPredictionRefusesUnknownTypeAndLengthMismatch(t *testing.T) {
	if _, err := PredictedX0([]float32{1}, []float32{1}, 1, 0, "flow"); err == nil || !strings.Contains(err.Error(), `"flow"`) {
		t.Errorf("PredictedX0 flow: %v", err)
	}
	if _, err := PredictedEps([]float32{1}, []float32{1}, 1, 0, "flow"); err == nil {
		t.Error("PredictedEps accepted flow")
	}
	if _, err := PredictedX0([]float32{1, 2}, []float32{1}, 1, 0, PredictEpsilon); err == nil {
		t.Error("PredictedX0 accepted mismatched lengths")
	}
	if _, err := ParsePredictionType("epsilon"); err != nil {
		t.Error(err)
	}
}
