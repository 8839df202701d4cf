package lcm

import (
	"fmt"
	"math"
)

// LCMScheduler is diffusers v0.26.3's LCMScheduler: it picks the few
// inference timesteps from the distillation grid and runs the multistep
// consistency sampling step (REFERENCE-LCD §9). Use it like diffusers':
// SetTimesteps, then for each t in Timesteps run the model and call Step.
type LCMScheduler struct {
	Config   SchedulerConfig
	Schedule *NoiseSchedule

	// Timesteps are the inference timesteps, descending, after SetTimesteps
	// (before it: T-1 down to 0, as diffusers initialises them).
	Timesteps []int64
	// NumInferenceSteps is what diffusers' num_inference_steps holds: the
	// requested step count, or the length of a custom list before strength
	// trimmed it. 0 until SetTimesteps.
	NumInferenceSteps int
	// Warnings are what diffusers logs from the last SetTimesteps (custom
	// timesteps off the training grid, and the like).
	Warnings []string

	finalAlphaCumprod float32
	stepIndex         int // -1: not started (diffusers' None)
	beginIndex        int // -1: unset
}

// NewLCMScheduler builds the scheduler from its config (a scheduler_config.json
// of an LCM pipeline, or a teacher's: diffusers' from_pretrained takes the
// keys LCMScheduler knows).
func NewLCMScheduler(cfg SchedulerConfig) (*LCMScheduler, error) {
	if cfg.Thresholding {
		return nil, fmt.Errorf("%s: thresholding = true is not supported (dynamic thresholding is meant for pixel-space models; latent diffusion leaves it off)", cfg.where())
	}
	if cfg.OriginalInferenceSteps < 1 {
		return nil, fmt.Errorf("%s: original_inference_steps is %d, want at least 1", cfg.where(), cfg.OriginalInferenceSteps)
	}
	schedule, err := NewNoiseSchedule(cfg)
	if err != nil {
		return nil, err
	}
	s := &LCMScheduler{
		Config:     cfg,
		Schedule:   schedule,
		Timesteps:  make([]int64, schedule.NumTrainTimesteps),
		stepIndex:  -1,
		beginIndex: -1,
	}
	for i := range s.Timesteps {
		s.Timesteps[i] = int64(schedule.NumTrainTimesteps - 1 - i)
	}
	s.finalAlphaCumprod = schedule.AlphasCumprod[0]
	if cfg.SetAlphaToOne {
		s.finalAlphaCumprod = 1
	}
	return s, nil
}

// SetTimesteps chooses the inference timesteps, as diffusers'
// set_timesteps(num_inference_steps, original_inference_steps, timesteps,
// strength). Pass exactly one of numInferenceSteps > 0 and a non-nil custom
// list. originalInferenceSteps 0 means the config's (50 by default).
// strength is a Python float upstream and is kept in float64, since
// int(50*0.7) must give 35 as in Python (float32 0.7 would give 34).
//
// Standard path: k = T // orig; the distillation grid (1..orig·strength)·k - 1,
// reversed; from it the entries at floor(linspace(0, len, n, endpoint=False)).
// 4 steps of orig 50 give 999, 759, 499, 259.
func (s *LCMScheduler) SetTimesteps(numInferenceSteps, originalInferenceSteps int, strength float64, custom []int64) error {
	if numInferenceSteps == 0 && custom == nil {
		return fmt.Errorf("lcm scheduler: pass exactly one of num_inference_steps or custom timesteps, got neither")
	}
	if numInferenceSteps != 0 && custom != nil {
		return fmt.Errorf("lcm scheduler: pass exactly one of num_inference_steps or custom timesteps, got both")
	}
	T := s.Schedule.NumTrainTimesteps
	orig := originalInferenceSteps
	if orig == 0 {
		orig = s.Config.OriginalInferenceSteps
	}
	if orig < 1 {
		return fmt.Errorf("lcm scheduler: original_inference_steps is %d, want at least 1", orig)
	}
	if orig > T {
		return fmt.Errorf("lcm scheduler: original_inference_steps %d cannot be larger than num_train_timesteps %d", orig, T)
	}
	k := T / orig
	// np.asarray(list(range(1, int(original_steps * strength) + 1))) * k - 1
	origin := make([]int64, max(int(float64(orig)*strength), 0))
	for i := range origin {
		origin[i] = int64((i+1)*k - 1)
	}

	var (
		timesteps []int64
		numSteps  int
		warnings  []string
	)
	if custom != nil {
		var err error
		timesteps, numSteps, warnings, err = customTimesteps(custom, origin, T, orig, strength)
		if err != nil {
			return err
		}
	} else {
		n := numInferenceSteps
		if n < 0 {
			return fmt.Errorf("lcm scheduler: num_inference_steps is %d, want at least 1", n)
		}
		if n > T {
			return fmt.Errorf("lcm scheduler: num_inference_steps %d cannot be larger than num_train_timesteps %d", n, T)
		}
		// diffusers checks the strength-cut grid first; past the whole grid
		// no strength helps, so that case is told first here, with a hint
		// that can be followed.
		if n > orig {
			return fmt.Errorf("lcm scheduler: num_inference_steps %d cannot be larger than original_inference_steps %d: the inference timesteps are a subset of that grid; use at most %d steps, or an original_inference_steps of at least %d (a divisor of %d)",
				n, orig, orig, n, T)
		}
		if len(origin)/n < 1 {
			return fmt.Errorf("lcm scheduler: original_inference_steps x strength = %d x %g = %d grid points is fewer than num_inference_steps %d; use at most %d steps or raise strength to at least %g",
				orig, strength, len(origin), n, len(origin), float64(n)/float64(orig))
		}
		numSteps = n
		// np.floor(np.linspace(0, len, n, endpoint=False)): i·(len/n) in float64.
		step := float64(len(origin)) / float64(n)
		timesteps = make([]int64, n)
		for i := range timesteps {
			idx := int(math.Floor(float64(i) * step))
			timesteps[i] = origin[len(origin)-1-idx]
		}
	}
	s.Timesteps, s.NumInferenceSteps, s.Warnings = timesteps, numSteps, warnings
	s.stepIndex, s.beginIndex = -1, -1
	return nil
}

// customTimesteps is set_timesteps' branch for a user-given list: checks,
// warnings, and the strength cut (StableDiffusionImg2ImgPipeline.get_timesteps).
// numSteps is the uncut length, which diffusers keeps as num_inference_steps
// (its TODO), so with strength < 1 the last kept step still re-noises.
func customTimesteps(custom, origin []int64, T, orig int, strength float64) (timesteps []int64, numSteps int, warnings []string, err error) {
	if len(custom) == 0 {
		return nil, 0, nil, fmt.Errorf("lcm scheduler: custom timesteps are empty")
	}
	onGrid := make(map[int64]bool, len(origin))
	for _, t := range origin {
		onGrid[t] = true
	}
	var offGrid []int64
	for i := 1; i < len(custom); i++ {
		if custom[i] >= custom[i-1] {
			return nil, 0, nil, fmt.Errorf("lcm scheduler: custom timesteps must be in descending order, got %d then %d", custom[i-1], custom[i])
		}
		if !onGrid[custom[i]] { // diffusers does not check the first one
			offGrid = append(offGrid, custom[i])
		}
	}
	if custom[0] >= int64(T) {
		return nil, 0, nil, fmt.Errorf("lcm scheduler: custom timesteps must start before num_train_timesteps %d, got %d", T, custom[0])
	}
	if strength == 1 && custom[0] != int64(T-1) {
		warnings = append(warnings, fmt.Sprintf("the first custom timestep is %d, not num_train_timesteps - 1 = %d; results may be unexpected", custom[0], T-1))
	}
	if len(offGrid) > 0 {
		warnings = append(warnings, fmt.Sprintf("custom timesteps %v are not on the training/distillation grid; results may be unexpected", offGrid))
	}
	if len(custom) > orig {
		warnings = append(warnings, fmt.Sprintf("%d custom timesteps exceed original_inference_steps %d; results may be unexpected", len(custom), orig))
	}
	n := len(custom)
	initTimestep := min(int(float64(n)*strength), n)
	start := max(n-initTimestep, 0)
	return append([]int64(nil), custom[start:]...), n, warnings, nil
}

// SetBeginIndex fixes the index of the first Step, as diffusers'
// set_begin_index (used by pipelines that start mid-schedule).
func (s *LCMScheduler) SetBeginIndex(i int) { s.beginIndex = i }

// StepIndex is the index into Timesteps of the next Step, once the first
// Step has fixed it; ok is false before that.
func (s *LCMScheduler) StepIndex() (index int, ok bool) { return s.stepIndex, s.stepIndex >= 0 }

// NeedsNoise says whether Step at timestep t will re-noise its result, and
// so needs a noise draw: every step but the last (diffusers draws
// randn_tensor only then, which matters for matching its random stream).
func (s *LCMScheduler) NeedsNoise(t int64) (bool, error) {
	i, err := s.indexFor(t)
	if err != nil {
		return false, err
	}
	return i != s.NumInferenceSteps-1, nil
}

// indexFor is the step index Step will use for t: the current one, or on
// the first call the begin index or the position of t in Timesteps (the
// second match if t occurs twice, as diffusers' index_for_timestep).
func (s *LCMScheduler) indexFor(t int64) (int, error) {
	if s.stepIndex >= 0 {
		return s.stepIndex, nil
	}
	if s.beginIndex >= 0 {
		return s.beginIndex, nil
	}
	var matches []int
	for i, ts := range s.Timesteps {
		if ts == t {
			matches = append(matches, i)
		}
	}
	switch len(matches) {
	case 0:
		return 0, fmt.Errorf("lcm scheduler: timestep %d is not in the schedule %v", t, s.Timesteps)
	case 1:
		return matches[0], nil
	}
	return matches[1], nil
}

// Scalings are the boundary scalings c_skip, c_out at t with the config's
// timestep_scaling.
func (s *LCMScheduler) Scalings(t int64) (cSkip, cOut float32) {
	return BoundaryScalings(t, float32(s.Config.TimestepScaling))
}

// Step is one multistep consistency sampling step at timestep t (diffusers'
// LCMScheduler.step): x0 from the model output by prediction type, clipped
// if clip_sample, denoised = c_out·x0 + c_skip·sample, and unless this is
// the last step prev = sqrt(ac_prev)·denoised + sqrt(1-ac_prev)·noise with
// ac_prev at the next timestep of the schedule; on the last step prev =
// denoised and noise is not used (pass nil). All float32, diffusers' order.
// A batch is fine: the three slices are elementwise, all at timestep t.
func (s *LCMScheduler) Step(modelOutput, sample []float32, t int64, noise []float32) (prevSample, denoised []float32, err error) {
	if s.NumInferenceSteps == 0 {
		return nil, nil, fmt.Errorf("lcm scheduler: Step before SetTimesteps")
	}
	T := int64(s.Schedule.NumTrainTimesteps)
	if t < 0 || t >= T {
		return nil, nil, fmt.Errorf("lcm scheduler: timestep %d is outside 0..%d", t, T-1)
	}
	if len(modelOutput) != len(sample) {
		return nil, nil, fmt.Errorf("lcm scheduler: model output has %d elements, sample has %d", len(modelOutput), len(sample))
	}
	index, err := s.indexFor(t)
	if err != nil {
		return nil, nil, err
	}
	last := index == s.NumInferenceSteps-1
	if !last && len(noise) != len(sample) {
		return nil, nil, fmt.Errorf("lcm scheduler: step %d (t=%d) re-noises and needs %d noise values, got %d", index, t, len(sample), len(noise))
	}

	// 1. previous timestep: the next one in the schedule, or t itself at the end.
	prevT := t
	if index+1 < len(s.Timesteps) {
		prevT = s.Timesteps[index+1]
	}
	// 2. alphas: alpha_prod_t_prev = ac[prev] or final_alpha_cumprod if prev < 0.
	alphaProdPrev := s.finalAlphaCumprod
	if prevT >= 0 {
		if prevT >= T {
			return nil, nil, fmt.Errorf("lcm scheduler: next timestep %d is outside 0..%d", prevT, T-1)
		}
		alphaProdPrev = s.Schedule.AlphasCumprod[prevT]
	}
	// 3. boundary scalings; 4. predicted x0 (sqrt(ac_t), sqrt(1-ac_t) as Alpha, Sigma).
	cSkip, cOut := s.Scalings(t)
	x0, err := PredictedX0(modelOutput, sample, s.Schedule.Alpha(t), s.Schedule.Sigma(t), s.Schedule.PredictionType)
	if err != nil {
		return nil, nil, fmt.Errorf("lcm scheduler: %w", err)
	}
	// 5. clip (thresholding is refused at construction).
	if s.Config.ClipSample {
		r := float32(s.Config.ClipSampleRange)
		for i, v := range x0 {
			x0[i] = min(max(v, -r), r)
		}
	}
	// 6. denoised = c_out·x0 + c_skip·sample.
	denoised = ConsistencyOutput(sample, x0, cSkip, cOut)
	// 7. re-noise to the next timestep unless this is the last step.
	if last {
		prevSample = append([]float32(nil), denoised...)
	} else {
		prevSample = weightedSum(sqrt32(alphaProdPrev), denoised, sqrt32(1-alphaProdPrev), noise)
	}
	s.stepIndex = index + 1
	return prevSample, denoised, nil
}
