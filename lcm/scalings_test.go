package lcm

import (
	"math"
	"testing"
)

func TestBoundaryScalingsAreTheIdentityAtZero(t *testing.T) {
	cSkip, cOut := BoundaryScalings(0, DefaultTimestepScaling)
	if cSkip != 1 || cOut != 0 {
		t.Fatalf("c_skip(0), c_out(0) = %g, %g, want 1, 0", cSkip, cOut)
	}
	f := ConsistencyOutput([]float32{0.25, -3}, []float32{7, 8}, cSkip, cOut)
	if f[0] != 0.25 || f[1] != -3 {
		t.Errorf("f(z, 0) = %v, want z", f)
	}
}

func TestBoundaryScalingsRoundLikeTorch(t *testing.T) {
	// u = 9990; u² = 99800100 is a float32 tie and rounds to even, 99800096;
	// + 0.25 is lost.
	cSkip, cOut := BoundaryScalings(999, 10)
	if want := float32(0.25) / float32(99800096); cSkip != want {
		t.Errorf("c_skip(999) = %g, want %g", cSkip, want)
	}
	if want := float32(9990) / float32(math.Sqrt(99800096)); cOut != want {
		t.Errorf("c_out(999) = %.9g, want %.9g", cOut, want)
	}
	// Elsewhere they are the float64 formulas up to float32 rounding.
	for _, ts := range []int64{1, 19, 39, 500} {
		for _, scale := range []float32{1, 10, 100} {
			cs, co := BoundaryScalings(ts, scale)
			u := float64(ts) * float64(scale)
			wantSkip, wantOut := 0.25/(u*u+0.25), u/math.Sqrt(u*u+0.25)
			if !closeRel(float64(cs), wantSkip, 1e-6) || !closeRel(float64(co), wantOut, 1e-6) {
				t.Errorf("t=%d s=%g: c_skip %g c_out %g", ts, scale, cs, co)
			}
		}
	}
}
