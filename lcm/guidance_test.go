package lcm

import (
	"math"
	"testing"
)

// REFERENCE-LCD §2.6's test vector (d=256, w=7.5), computed there in float64.
// Ours is torch's float32 arithmetic, where w·1000·f_i ≈ 7500 carries a
// rounding of up to 2.4e-4 in the angle, so compare to 5e-4.
func TestGuidanceEmbeddingMatchesReferenceVector(t *testing.T) {
	g := GuidanceEmbedding([]float32{7.5}, 256)
	if len(g) != 256 {
		t.Fatalf("len %d", len(g))
	}
	for i, want := range map[int]float64{0: -0.851236, 1: 0.842228, 2: 0.011820, 127: 0.681639,
		128: -0.524783, 129: 0.539121, 130: -0.999930, 255: 0.731689} {
		if d := math.Abs(float64(g[i]) - want); d > 5e-4 {
			t.Errorf("g[%d] = %.6f, want %.6f (off by %.2g)", i, g[i], want, d)
		}
	}
	zero := GuidanceEmbedding([]float32{0}, 32)
	for i, v := range zero {
		if want := float32(0); i >= 16 && v != 1 || i < 16 && v != want {
			t.Fatalf("w=0: g = %v, want 16 zeros then 16 ones", zero)
		}
	}
}

func TestEmbeddingsPadOddWidthsAndStackRows(t *testing.T) {
	g := GuidanceEmbedding([]float32{3, 7.5}, 33)
	if len(g) != 66 || g[32] != 0 || g[65] != 0 {
		t.Fatalf("odd width: len %d, pads %g %g", len(g), g[32], g[65])
	}
	one := GuidanceEmbedding([]float32{7.5}, 33)
	for i := range one {
		if g[33+i] != one[i] {
			t.Fatalf("row 1 differs from the single-row embedding at %d", i)
		}
	}
	e := TimestepEmbedding([]float32{999, 0}, 7, true, 0)
	if len(e) != 14 || e[6] != 0 || e[13] != 0 {
		t.Fatalf("odd timestep embedding %v", e)
	}
}

// The UNet's embedding against the float64 formula; frequencies and the
// angle are float32 like torch's, so allow the rounding of t·f ≈ 1000.
func TestTimestepEmbeddingFollowsTheFormula(t *testing.T) {
	const dim = 320
	ts := []float32{999, 250, 0, 1}
	for _, shift := range []float32{0, 1} {
		for _, flip := range []bool{true, false} {
			e := TimestepEmbedding(ts, dim, flip, shift)
			for b, tv := range ts {
				for i := 0; i < dim/2; i++ {
					arg := float64(tv) * math.Exp(-math.Log(10000)*float64(i)/(dim/2-float64(shift)))
					sin, cos := math.Sin(arg), math.Cos(arg)
					if flip {
						sin, cos = cos, sin
					}
					got0, got1 := float64(e[b*dim+i]), float64(e[b*dim+dim/2+i])
					if math.Abs(got0-sin) > 1e-4 || math.Abs(got1-cos) > 1e-4 {
						t.Fatalf("t=%g flip=%v shift=%g i=%d: got %g %g want %g %g", tv, flip, shift, i, got0, got1, sin, cos)
					}
				}
			}
		}
	}
	// t = 0 with flip: cos half first, all ones, then zeros.
	e := TimestepEmbedding([]float32{0}, 8, true, 0)
	for i, v := range e {
		if (i < 4 && v != 1) || (i >= 4 && v != 0) {
			t.Fatalf("t=0 flipped: %v", e)
		}
	}
}

// expf is SLEEF's, within an ulp of the true exp everywhere it is used.
func TestExpfIsWithinAnUlp(t *testing.T) {
	for x := float32(-20); x <= 20; x += 0.013 {
		got := expf(x)
		want := math.Exp(float64(x))
		ulp := float64(math.Nextafter32(float32(want), float32(math.Inf(1))) - float32(want))
		if math.Abs(float64(got)-want) > ulp {
			t.Fatalf("expf(%g) = %g, want %g", x, got, want)
		}
	}
	if expf(0) != 1 || expf(-200) != 0 || !math.IsInf(float64(expf(200)), 1) {
		t.Error("expf edge values")
	}
}

func TestGuidanceScaleAndGuidance(t *testing.T) {
	// The fixtures' draws: u 0.25, 0.75 in [5, 15] give 7.5 and 12.5.
	if w0, w1 := GuidanceScale(0.25, 5, 15), GuidanceScale(0.75, 5, 15); w0 != 7.5 || w1 != 12.5 {
		t.Errorf("w = %g, %g", w0, w1)
	}
	g := ApplyGuidance([]float32{1, 2}, []float32{0.5, 3}, 2)
	if g[0] != 2 || g[1] != 0 {
		t.Errorf("cond + w(cond-uncond) = %v, want [2 0]", g)
	}
}
