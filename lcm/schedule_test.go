package lcm

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sdSchedule is Stable Diffusion's schedule (scaled_linear 0.00085..0.012, T=1000).
func sdSchedule(t *testing.T) *NoiseSchedule {
	t.Helper()
	s, err := NewNoiseSchedule(DefaultSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func closeRel(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// REFERENCE-LCD §2.1's table. It was computed by a float32 emulation with a
// float32 running product, while torch's CPU cumprod accumulates in double;
// so the table is only good to about 1e-6 (the golden test checks
// alphas_cumprod against torch bit for bit). c_skip is given to 3-7 digits.
func TestScheduleMatchesReferenceTable(t *testing.T) {
	s := sdSchedule(t)
	rows := []struct {
		t                 int64
		ac, alpha, sigma  float64
		cSkip, cOutMinus1 float64 // c_out - 1 is 0 to float32 precision past t=39
	}{
		{0, 0.99914998, 0.99957490, 0.02915513, 1, -1},
		{19, 0.98224401, 0.99108224, 0.13325159, 6.925160e-06, 0.99999654 - 1},
		{39, 0.96289515, 0.98127221, 0.19262618, 1.643653e-06, 0.99999918 - 1},
		{259, 0.65897548, 0.81177305, 0.58397305, 3.7268e-08, 0},
		{479, 0.30509576, 0.55235474, 0.83360916, 1.0896e-08, 0},
		{499, 0.27766952, 0.52694356, 0.84990028, 1.0040e-08, 0},
		{759, 0.05221286, 0.22850133, 0.97354360, 4.34e-09, 0},
		{979, 0.00591276, 0.07689446, 0.99703924, 2.61e-09, 0},
		{999, 0.00466009, 0.06826485, 0.99766723, 2.51e-09, 0},
	}
	for _, r := range rows {
		const tableTol = 1e-6
		if got := float64(s.AlphasCumprod[r.t]); math.Abs(got-r.ac) > tableTol {
			t.Errorf("ac[%d] = %.8f, want %.8f", r.t, got, r.ac)
		}
		if got := float64(s.Alpha(r.t)); math.Abs(got-r.alpha) > tableTol {
			t.Errorf("a(%d) = %.8f, want %.8f", r.t, got, r.alpha)
		}
		if got := float64(s.Sigma(r.t)); math.Abs(got-r.sigma) > tableTol {
			t.Errorf("s(%d) = %.8f, want %.8f", r.t, got, r.sigma)
		}
		cSkip, cOut := BoundaryScalings(r.t, DefaultTimestepScaling)
		if !closeRel(float64(cSkip), r.cSkip, 5e-3) {
			t.Errorf("c_skip(%d) = %.6g, want %.6g", r.t, cSkip, r.cSkip)
		}
		if got := float64(cOut) - 1; math.Abs(got-r.cOutMinus1) > 1e-7 {
			t.Errorf("c_out(%d) = %.8f, want %.8f", r.t, cOut, 1+r.cOutMinus1)
		}
	}
	if got := len(s.AlphaSchedule()); got != 1000 || s.AlphaSchedule()[499] != s.Alpha(499) || s.SigmaSchedule()[999] != s.Sigma(999) {
		t.Errorf("alpha/sigma schedules disagree with Alpha/Sigma (len %d)", got)
	}
}

func TestScheduleRefusesUnknownBetaSchedule(t *testing.T) {
	cfg := DefaultSchedulerConfig()
	cfg.Path = "teacher/scheduler/scheduler_config.json"
	cfg.BetaSchedule = "sigmoid"
	_, err := NewNoiseSchedule(cfg)
	if err == nil || !strings.Contains(err.Error(), `beta_schedule "sigmoid"`) || !strings.Contains(err.Error(), cfg.Path) {
		t.Fatalf("err = %v, want one naming beta_schedule \"sigmoid\" and the file", err)
	}
}

func TestScheduleRefusesUnknownPredictionType(t *testing.T) {
	cfg := DefaultSchedulerConfig()
	cfg.PredictionType = "flow"
	_, err := NewNoiseSchedule(cfg)
	if err == nil || !strings.Contains(err.Error(), `prediction_type "flow"`) {
		t.Fatalf("err = %v, want one naming prediction_type \"flow\"", err)
	}
	if _, err := NewLCMScheduler(cfg); err == nil {
		t.Fatal("LCMScheduler accepted prediction_type flow")
	}
}

func TestScheduleRefusesTrainedBetasOfWrongLength(t *testing.T) {
	cfg := DefaultSchedulerConfig()
	cfg.TrainedBetas = []float64{0.1, 0.2}
	if _, err := NewNoiseSchedule(cfg); err == nil || !strings.Contains(err.Error(), "trained_betas has 2 entries") {
		t.Fatalf("err = %v", err)
	}
}

func TestReadSchedulerConfigKeepsDefaultsForMissingKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scheduler_config.json")
	// A PNDM teacher config: no LCM keys, extra PNDM keys, a null.
	body := `{"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
	 "beta_start": 0.00085, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
	 "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null}`
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadSchedulerConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != path || cfg.ClassName != "PNDMScheduler" || cfg.PredictionType != "v_prediction" ||
		cfg.SetAlphaToOne || cfg.StepsOffset != 1 || cfg.TrainedBetas != nil ||
		cfg.OriginalInferenceSteps != 50 || cfg.TimestepScaling != 10 || cfg.ClipSample {
		t.Errorf("config %+v", cfg)
	}
	s, err := NewNoiseSchedule(cfg)
	if err != nil || s.PredictionType != PredictV {
		t.Fatalf("schedule %v, err %v", s, err)
	}
	if _, err := ReadSchedulerConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("reading a missing file gave no error")
	}
}

func TestLinearAndCosineSchedulesAreMonotone(t *testing.T) {
	for _, name := range []string{"linear", "scaled_linear", "squaredcos_cap_v2"} {
		cfg := DefaultSchedulerConfig()
		cfg.BetaSchedule = name
		s, err := NewNoiseSchedule(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(s.AlphasCumprod); i++ {
			if !(s.AlphasCumprod[i] < s.AlphasCumprod[i-1]) || s.AlphasCumprod[i] <= 0 {
				t.Fatalf("%s: ac[%d] = %g after %g", name, i, s.AlphasCumprod[i], s.AlphasCumprod[i-1])
			}
		}
		if name == "linear" && (s.Betas[0] != float32(0.00085) || s.Betas[999] != float32(0.012)) {
			t.Errorf("linear betas run %g..%g, want 0.00085..0.012", s.Betas[0], s.Betas[999])
		}
	}
}

func TestZeroSNRRescaleEndsAtZeroAndKeepsTheStart(t *testing.T) {
	cfg := DefaultSchedulerConfig()
	cfg.RescaleBetasZeroSNR = true
	s, err := NewNoiseSchedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain := sdSchedule(t)
	if s.AlphasCumprod[999] != 0 || s.Sigma(999) != 1 {
		t.Errorf("ac[999] = %g, want 0", s.AlphasCumprod[999])
	}
	if !closeRel(float64(s.AlphasCumprod[0]), float64(plain.AlphasCumprod[0]), 1e-6) {
		t.Errorf("ac[0] = %g, want %g as before rescaling", s.AlphasCumprod[0], plain.AlphasCumprod[0])
	}
}

func TestTorchLinspaceHitsBothEnds(t *testing.T) {
	for _, n := range []int{2, 3, 7, 16, 17, 33, 1000} {
		v := torchLinspace(-1.5, 2.25, n)
		if v[0] != -1.5 || v[n-1] != 2.25 {
			t.Errorf("n=%d: ends %g, %g", n, v[0], v[n-1])
		}
		step := 3.75 / float64(n-1)
		for i, x := range v {
			if math.Abs(float64(x)-(-1.5+float64(i)*step)) > 1e-6 {
				t.Errorf("n=%d: v[%d] = %g", n, i, x)
			}
		}
	}
	if v := torchLinspace(0.5, 1, 1); len(v) != 1 || v[0] != 0.5 {
		t.Errorf("one step: %v", v)
	}
}

func TestFMA32RoundsOnce(t *testing.T) {
	// (1+2^-12)² = 1 + 2^-11 + 2^-24 exactly: 2^-24 is half a float32 ulp.
	// Adding ±2^-60 tips the tie; rounding to float64 first would lose it
	// and round to even (down) both times.
	a := float32(1 + 1.0/(1<<12))
	tiny := float32(math.Ldexp(1, -60))
	lo := float32(1 + 1.0/(1<<11))
	hi := math.Nextafter32(lo, 2)
	if naive := float32(math.FMA(float64(a), float64(a), float64(tiny))); naive != lo {
		t.Fatalf("test premise: float64 FMA then float32 gives %.10g, want the double-rounded %.10g", naive, lo)
	}
	if got := fma32(a, a, tiny); got != hi {
		t.Errorf("fma32 just above a tie = %.10g, want %.10g", got, hi)
	}
	if got := fma32(a, a, -tiny); got != lo {
		t.Errorf("fma32 just below a tie = %.10g, want %.10g", got, lo)
	}
	if got := fma32(a, a, 0); got != lo {
		t.Errorf("fma32 on the tie = %.10g, want the even %.10g", got, lo)
	}
	if got := fma32(3, 0.5, 0.25); got != 1.75 {
		t.Errorf("fma32(3, .5, .25) = %g", got)
	}
}
