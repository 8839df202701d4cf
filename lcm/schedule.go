package lcm

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// PredictionType says what a UNet predicts (diffusers' `prediction_type`).
type PredictionType string

// The prediction types diffusers' DDPM and LCM schedulers accept.
const (
	PredictEpsilon PredictionType = "epsilon"      // the noise
	PredictSample  PredictionType = "sample"       // x0 itself
	PredictV       PredictionType = "v_prediction" // v = a·eps - s·x0
)

// ParsePredictionType accepts the spellings of a scheduler config.
func ParsePredictionType(s string) (PredictionType, error) {
	switch p := PredictionType(s); p {
	case PredictEpsilon, PredictSample, PredictV:
		return p, nil
	}
	return "", fmt.Errorf("prediction_type %q is not supported (want epsilon, sample or v_prediction)", s)
}

// SchedulerConfig is the part of a diffusers `scheduler/scheduler_config.json`
// that golcm reads. Keys a file leaves out take LCMScheduler's defaults (see
// DefaultSchedulerConfig); other keys (skip_prk_steps, use_karras_sigmas, ...)
// are ignored, as diffusers ignores keys a scheduler class does not take.
type SchedulerConfig struct {
	Path      string `json:"-"`           // the file it was read from, for error messages
	ClassName string `json:"_class_name"` // e.g. LCMScheduler, PNDMScheduler; informational

	// The noise schedule (DDPMScheduler and LCMScheduler read these the same way).
	NumTrainTimesteps   int       `json:"num_train_timesteps"`    // T
	BetaStart           float64   `json:"beta_start"`             // first beta (its sqrt for scaled_linear)
	BetaEnd             float64   `json:"beta_end"`               // last beta
	BetaSchedule        string    `json:"beta_schedule"`          // linear, scaled_linear or squaredcos_cap_v2
	TrainedBetas        []float64 `json:"trained_betas"`          // when set, used instead of the three above
	RescaleBetasZeroSNR bool      `json:"rescale_betas_zero_snr"` // Lin et al. 2023: shift so ac[T-1] = 0
	PredictionType      string    `json:"prediction_type"`        // epsilon, sample or v_prediction

	// LCMScheduler only.
	OriginalInferenceSteps   int     `json:"original_inference_steps"`   // N of the distillation grid (50)
	TimestepScaling          float64 `json:"timestep_scaling"`           // s in c_skip/c_out (10)
	ClipSample               bool    `json:"clip_sample"`                // clamp predicted x0
	ClipSampleRange          float64 `json:"clip_sample_range"`          // to ±this
	SetAlphaToOne            bool    `json:"set_alpha_to_one"`           // final_alpha_cumprod = 1, else ac[0]
	Thresholding             bool    `json:"thresholding"`               // dynamic thresholding (unsupported)
	DynamicThresholdingRatio float64 `json:"dynamic_thresholding_ratio"` // its quantile
	SampleMaxValue           float64 `json:"sample_max_value"`           // its clamp

	// Stored by diffusers' LCMScheduler but never used by it (REFERENCE-LCD §9, §10.17).
	StepsOffset     int    `json:"steps_offset"`
	TimestepSpacing string `json:"timestep_spacing"`
}

// DefaultSchedulerConfig returns the defaults of diffusers' LCMScheduler.
// DDPMScheduler's defaults differ (linear betas 1e-4..0.02, clip_sample on),
// but Stable Diffusion configs always state the schedule keys, so the
// difference never shows for them.
func DefaultSchedulerConfig() SchedulerConfig {
	return SchedulerConfig{
		NumTrainTimesteps:        1000,
		BetaStart:                0.00085,
		BetaEnd:                  0.012,
		BetaSchedule:             "scaled_linear",
		PredictionType:           string(PredictEpsilon),
		OriginalInferenceSteps:   50,
		TimestepScaling:          10,
		ClipSampleRange:          1,
		SetAlphaToOne:            true,
		DynamicThresholdingRatio: 0.995,
		SampleMaxValue:           1,
		TimestepSpacing:          "leading",
	}
}

// ReadSchedulerConfig reads a diffusers scheduler_config.json on top of
// DefaultSchedulerConfig. A JSON null leaves the default in place.
func ReadSchedulerConfig(path string) (SchedulerConfig, error) {
	cfg := DefaultSchedulerConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("scheduler config: %w", err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("scheduler config %s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// where names the config in error messages.
func (c SchedulerConfig) where() string {
	if c.Path == "" {
		return "scheduler config"
	}
	return "scheduler config " + c.Path
}

// NoiseSchedule is the discrete forward process of a diffusion model:
// ac[t] = prod_{i<=t} (1 - beta_i) for t = 0..T-1, with z_t = a(t)·x0 + s(t)·eps.
type NoiseSchedule struct {
	NumTrainTimesteps int            // T
	PredictionType    PredictionType // what the model trained on this schedule predicts
	Betas             []float32      // beta_t, float32 as torch holds them
	AlphasCumprod     []float32      // ac[t], float32 as torch holds them
}

// NewNoiseSchedule builds the schedule the way diffusers' DDPMScheduler and
// LCMScheduler do in __init__, in float32 on the CPU.
func NewNoiseSchedule(cfg SchedulerConfig) (*NoiseSchedule, error) {
	pred, err := ParsePredictionType(cfg.PredictionType)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.where(), err)
	}
	T := cfg.NumTrainTimesteps
	if T < 2 {
		return nil, fmt.Errorf("%s: num_train_timesteps is %d, want at least 2", cfg.where(), T)
	}
	var betas []float32
	switch {
	case cfg.TrainedBetas != nil:
		if len(cfg.TrainedBetas) != T {
			return nil, fmt.Errorf("%s: trained_betas has %d entries, want num_train_timesteps = %d", cfg.where(), len(cfg.TrainedBetas), T)
		}
		betas = make([]float32, T)
		for i, b := range cfg.TrainedBetas {
			betas[i] = float32(b)
		}
	case cfg.BetaSchedule == "linear":
		betas = torchLinspace(float32(cfg.BetaStart), float32(cfg.BetaEnd), T)
	case cfg.BetaSchedule == "scaled_linear":
		// torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=float32) ** 2:
		// the square roots are taken in float64 by Python, then cast.
		betas = torchLinspace(float32(math.Sqrt(cfg.BetaStart)), float32(math.Sqrt(cfg.BetaEnd)), T)
		for i, b := range betas {
			betas[i] = b * b
		}
	case cfg.BetaSchedule == "squaredcos_cap_v2":
		betas = betasForCosineAlphaBar(T)
	default:
		return nil, fmt.Errorf("%s: beta_schedule %q is not supported (want linear, scaled_linear or squaredcos_cap_v2, or trained_betas)", cfg.where(), cfg.BetaSchedule)
	}
	if cfg.RescaleBetasZeroSNR {
		betas = rescaleZeroTerminalSNR(betas)
	}
	return &NoiseSchedule{
		NumTrainTimesteps: T,
		PredictionType:    pred,
		Betas:             betas,
		AlphasCumprod:     cumprodOneMinus(betas),
	}, nil
}

// Alpha is a(t) = sqrt(ac[t]), the signal scale at timestep t (0 <= t < T).
func (s *NoiseSchedule) Alpha(t int64) float32 { return sqrt32(s.AlphasCumprod[t]) }

// Sigma is s(t) = sqrt(1 - ac[t]), the noise scale at timestep t (0 <= t < T).
func (s *NoiseSchedule) Sigma(t int64) float32 { return sqrt32(1 - s.AlphasCumprod[t]) }

// AlphaSchedule is a(t) for every t: the scripts' `alpha_schedule`.
func (s *NoiseSchedule) AlphaSchedule() []float32 {
	out := make([]float32, len(s.AlphasCumprod))
	for t := range out {
		out[t] = s.Alpha(int64(t))
	}
	return out
}

// SigmaSchedule is s(t) for every t: the scripts' `sigma_schedule`.
func (s *NoiseSchedule) SigmaSchedule() []float32 {
	out := make([]float32, len(s.AlphasCumprod))
	for t := range out {
		out[t] = s.Sigma(int64(t))
	}
	return out
}

// AddNoise is DDPMScheduler.add_noise for one sample at timestep t:
// z_t = a(t)·x0 + s(t)·noise, in float32.
func (s *NoiseSchedule) AddNoise(x0, noise []float32, t int64) []float32 {
	return weightedSum(s.Alpha(t), x0, s.Sigma(t), noise)
}

// sqrt32 is torch's float32 sqrt: correctly rounded, which the float64 square
// root rounded to float32 always is.
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// weightedSum returns a·x + b·y elementwise in float32, each product rounded
// on its own as torch's separate mul and add kernels do (the explicit
// conversions keep the Go compiler from fusing them into an FMA).
func weightedSum(a float32, x []float32, b float32, y []float32) []float32 {
	if len(x) != len(y) {
		panic(fmt.Sprintf("lcm: weightedSum of %d and %d elements", len(x), len(y)))
	}
	out := make([]float32, len(x))
	for i := range x {
		out[i] = float32(a*x[i]) + float32(b*y[i])
	}
	return out
}

// cumprodOneMinus is torch.cumprod(1.0 - betas, dim=0) on the CPU: alphas
// are float32, but the CPU cumprod kernel accumulates in acc_type<float> =
// double and rounds each output to float32 (a float32 running product
// differs from diffusers' alphas_cumprod by up to 3e-7).
func cumprodOneMinus(betas []float32) []float32 {
	out := make([]float32, len(betas))
	acc := 1.0
	for i, b := range betas {
		acc *= float64(1 - b)
		out[i] = float32(acc)
	}
	return out
}

// linspaceVectorWidth is the float32 lane count of the AVX2 kernels of torch.
const linspaceVectorWidth = 8

// torchLinspace reproduces torch.linspace(start, end, steps,
// dtype=torch.float32) as the CPU kernel of torch 1.13 (the version the
// fixtures come from) computes it with its AVX2 build:
//
//	step = (end - start) / (steps - 1)                  (float32)
//	value(i) = start + step*i      for i <  steps/2
//	value(i) = end - step*(steps-1-i)  for i >= steps/2
//
// but evaluated in vectors of 8: each vector takes the branch of its first
// index idx, computes base = value(idx) and fills lane j with base + j*step,
// pairs of vectors per loop turn, the tail scalar. The kernel is compiled
// with FMA contraction, so every "x + y*z" above is one fused multiply-add.
// Only this exact evaluation order gives diffusers' alphas_cumprod bit for
// bit (checked against sched.alphas_cumprod in the fixtures).
func torchLinspace(start, end float32, steps int) []float32 {
	out := make([]float32, steps)
	switch steps {
	case 0:
		return out
	case 1:
		out[0] = start
		return out
	}
	step := (end - start) / float32(steps-1)
	halfway := steps / 2
	value := func(idx int) float32 {
		if idx < halfway {
			return fma32(step, float32(idx), start)
		}
		return fma32(-step, float32(steps-idx-1), end)
	}
	const w = linspaceVectorWidth
	i := 0
	for ; i+2*w <= steps; i += 2 * w {
		for v := i; v < i+2*w; v += w {
			base := value(v)
			for j := 0; j < w; j++ {
				out[v+j] = fma32(float32(j), step, base)
			}
		}
	}
	for ; i < steps; i++ {
		out[i] = value(i)
	}
	return out
}

// fma32 is a float32 fused multiply-add a*b + c with one rounding, as the
// vfmadd instructions of compiled torch kernels compute it.
func fma32(a, b, c float32) float32 {
	// a*b is exact in float64 (24+24 bits); the sum may not be, and rounding
	// it first to float64 and then to float32 could round twice. TwoSum gives
	// the exact error e of s = p + c, which decides a float32 tie in s.
	p := float64(a) * float64(b)
	cc := float64(c)
	s := p + cc
	bb := s - p
	e := (p - (s - bb)) + (cc - bb)
	r := float32(s)
	if e == 0 || float64(r) == s || math.IsInf(s, 0) || math.IsNaN(s) {
		return r
	}
	// s is not a float32; r is right unless s lies exactly halfway between
	// two float32 values, where the sign of e picks the side.
	other := math.Nextafter32(r, float32(math.Copysign(math.Inf(1), s-float64(r))))
	if (float64(r)+float64(other))/2 != s {
		return r
	}
	hi, lo := max(r, other), min(r, other)
	if e > 0 {
		return hi
	}
	return lo
}

// betasForCosineAlphaBar is diffusers' betas_for_alpha_bar (the Glide cosine
// schedule, "squaredcos_cap_v2"), computed in Python floats and then stored
// as float32.
func betasForCosineAlphaBar(T int) []float32 {
	alphaBar := func(t float64) float64 {
		c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
		return c * c
	}
	betas := make([]float32, T)
	for i := range betas {
		t1 := float64(i) / float64(T)
		t2 := float64(i+1) / float64(T)
		betas[i] = float32(min(1-alphaBar(t2)/alphaBar(t1), 0.999))
	}
	return betas
}

// rescaleZeroTerminalSNR is diffusers' rescale_zero_terminal_snr (Lin et al.
// 2023, Algorithm 1) in float32 torch arithmetic: shift sqrt(ac) so that its
// last value is 0, rescale so its first value is unchanged, and convert back
// to betas.
func rescaleZeroTerminalSNR(betas []float32) []float32 {
	ac := cumprodOneMinus(betas)
	abs := make([]float32, len(ac))
	for i, a := range ac {
		abs[i] = sqrt32(a)
	}
	first, last := abs[0], abs[len(abs)-1]
	scale := first / (first - last)
	alphaBar := make([]float32, len(abs))
	for i := range abs {
		v := (abs[i] - last) * scale
		alphaBar[i] = v * v
	}
	out := make([]float32, len(betas))
	out[0] = 1 - alphaBar[0]
	for i := 1; i < len(out); i++ {
		out[i] = 1 - alphaBar[i]/alphaBar[i-1]
	}
	return out
}
