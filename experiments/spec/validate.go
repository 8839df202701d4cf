package spec

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
)

// Validate reports every impossible value and every inconsistent pair of values, one error per
// problem (joined), each naming the keys and values involved.
func (s Spec) Validate() error {
	var errs []error
	for _, p := range s.problems() {
		errs = append(errs, errors.New(p.msg))
	}
	return errors.Join(errs...)
}

// problem is one validation failure and the keys it is about, so that Parse can say where the
// first of them was written.
type problem struct {
	keys []string
	msg  string
}

// checker collects problems, formatting keys as `key = value` with the spec's values.
type checker struct {
	s         *Spec
	problems  []problem
	nonFinite map[string]bool     // float keys holding NaN or an infinity
	accepted  map[string][]string // the keys with a fixed set of values, and those values
}

// kv is `key = value` as written in TOML.
func (c *checker) kv(key string) string {
	return key + " = " + formatValue(fieldByKey[key].value(c.s))
}

func (c *checker) fail(keys []string, format string, args ...any) {
	for _, k := range keys {
		if c.nonFinite[k] {
			return // already reported as not finite
		}
	}
	c.problems = append(c.problems, problem{keys: keys, msg: fmt.Sprintf(format, args...)})
}

func (c *checker) intAtLeast(key string, lo int64) {
	if fieldByKey[key].value(c.s).Int() < lo {
		c.fail([]string{key}, "%s must be at least %d", c.kv(key), lo)
	}
}

// floatIn checks lo <= v <= hi, or lo <= v < hi when hiOpen.
func (c *checker) floatIn(key string, lo, hi float64, hiOpen bool) {
	v := fieldByKey[key].value(c.s).Float()
	switch {
	case hiOpen && !(v >= lo && v < hi):
		c.fail([]string{key}, "%s must be in [%s, %s)", c.kv(key), formatFloat(lo), formatFloat(hi))
	case !hiOpen && !(v >= lo && v <= hi):
		c.fail([]string{key}, "%s must be in [%s, %s]", c.kv(key), formatFloat(lo), formatFloat(hi))
	}
}

func (c *checker) positive(key string) {
	if v := fieldByKey[key].value(c.s).Float(); !(v > 0) {
		c.fail([]string{key}, "%s must be greater than 0", c.kv(key))
	}
}

func (c *checker) nonNegative(key string) {
	if v := fieldByKey[key].value(c.s).Float(); !(v >= 0) {
		c.fail([]string{key}, "%s must not be negative", c.kv(key))
	}
}

func (c *checker) oneOf(key string, choices ...string) {
	c.accepted[key] = choices
	if !slices.Contains(choices, fieldByKey[key].value(c.s).String()) {
		quoted := make([]string, len(choices))
		for i, ch := range choices {
			quoted[i] = quote(ch)
		}
		c.fail([]string{key}, "%s must be one of %s", c.kv(key), strings.Join(quoted, ", "))
	}
}

func (c *checker) nonEmpty(key string) {
	if strings.TrimSpace(fieldByKey[key].value(c.s).String()) == "" {
		c.fail([]string{key}, "%s must not be empty", c.kv(key))
	}
}

// imageSize checks a pixel size: positive (or 0 when zeroOK) and a multiple of the VAE factor.
func (c *checker) imageSize(key string, zeroOK bool) {
	v := fieldByKey[key].value(c.s).Int()
	switch {
	case v == 0 && zeroOK:
	case v <= 0:
		c.fail([]string{key}, "%s must be a positive multiple of %d", c.kv(key), VAEFactor)
	case v%VAEFactor != 0:
		c.fail([]string{key}, "%s is not a multiple of %d (the VAE's downsampling factor)", c.kv(key), VAEFactor)
	}
}

// listOfNames checks a list of strings has no empty or repeated entries (and at least one entry
// when required).
func (c *checker) listOfNames(key string, required bool) {
	list := fieldByKey[key].value(c.s).Interface().([]string)
	if required && len(list) == 0 {
		c.fail([]string{key}, "%s must not be empty", c.kv(key))
	}
	seen := map[string]bool{}
	for i, e := range list {
		switch {
		case strings.TrimSpace(e) == "":
			c.fail([]string{key}, "%s: entry %d is empty", c.kv(key), i+1)
		case seen[e]:
			c.fail([]string{key}, "%s: %s is listed twice", c.kv(key), quote(e))
		}
		seen[e] = true
	}
}

func (s Spec) problems() []problem { return s.check().problems }

// acceptedValues lists the keys that take one of a fixed set of values, with the values Validate
// accepts.
func acceptedValues() map[string][]string { return Default().check().accepted }

func (s Spec) check() *checker {
	c := &checker{s: &s, nonFinite: map[string]bool{}, accepted: map[string][]string{}}

	// Every float must be finite (only code, not TOML, can set NaN or an infinity); other checks
	// skip such keys.
	for _, f := range fields {
		if v := f.value(&s); v.Kind() == reflect.Float64 && (math.IsNaN(v.Float()) || math.IsInf(v.Float(), 0)) {
			c.fail([]string{f.key}, "%s must be a finite number", c.kv(f.key))
			c.nonFinite[f.key] = true
		}
	}

	// task, and the keys of other tasks: set in code (Parse refuses them in files), they would be
	// silently ignored.
	c.oneOf("task", Tasks...)
	def := Default()
	for _, f := range fields {
		if !KeyOfTask(f.key, s.Task) && !reflect.DeepEqual(f.value(&s).Interface(), f.value(&def).Interface()) {
			c.fail([]string{f.key}, "%s: %s", c.kv(f.key), foreignKeyMessage(f.key, s.Task))
		}
	}

	// [model]
	c.nonEmpty("model.path")
	if strings.ContainsAny(s.Model.Revision, " \t\r\n\\") {
		c.fail([]string{"model.revision"}, "%s must be a branch, tag or commit name", c.kv("model.revision"))
	}
	if strings.ContainsAny(s.Model.Variant, " \t\r\n/\\.") {
		c.fail([]string{"model.variant"}, "%s must be a single word like \"fp16\"", c.kv("model.variant"))
	}

	// [distill]
	d := s.Distill
	c.oneOf("distill.mode", "full", "lora")
	c.nonNegative("distill.w_min")
	c.nonNegative("distill.w_max")
	if d.WMin > d.WMax {
		c.fail([]string{"distill.w_min", "distill.w_max"}, "%s is greater than %s", c.kv("distill.w_min"), c.kv("distill.w_max"))
	}
	ddimOK := false
	switch n := d.NumDDIMTimesteps; {
	case n < 1 || n > TrainTimesteps:
		c.fail([]string{"distill.num_ddim_timesteps"}, "%s must be between 1 and %d", c.kv("distill.num_ddim_timesteps"), TrainTimesteps)
	case TrainTimesteps%n != 0:
		c.fail([]string{"distill.num_ddim_timesteps"}, "%s does not divide %d (the teacher's training timesteps), e.g. 25, 50 or 100",
			c.kv("distill.num_ddim_timesteps"), TrainTimesteps)
	default:
		ddimOK = true
	}
	c.oneOf("distill.loss", "l2", "huber")
	c.positive("distill.huber_c")
	c.positive("distill.timestep_scaling_factor")
	c.floatIn("distill.ema_decay", 0, 1, true)
	// The guidance embedding divides by half-1 with half = d/2 (REFERENCE-LCD.md §2.6).
	c.intAtLeast("distill.time_cond_proj_dim", 4)

	// [lora]
	c.intAtLeast("lora.rank", 1)
	c.positive("lora.alpha")
	c.floatIn("lora.dropout", 0, 1, true)
	c.listOfNames("lora.targets", true)
	c.listOfNames("lora.formats", true)
	c.accepted["lora.formats"] = LoRAFormats // each entry one of them
	for _, f := range s.LoRA.Formats {
		if !slices.Contains(LoRAFormats, f) {
			c.fail([]string{"lora.formats"}, "%s: %s is not a LoRA file format (want %s)", c.kv("lora.formats"), quote(f), strings.Join(LoRAFormats, ", "))
		}
	}

	// [diffusion]
	c.oneOf("diffusion.prediction_type", "", "epsilon", "v_prediction")
	c.nonNegative("diffusion.snr_gamma")
	c.nonNegative("diffusion.noise_offset")
	c.nonNegative("diffusion.input_perturbation")
	c.floatIn("diffusion.proportion_empty_prompts", 0, 1, false)
	c.floatIn("diffusion.ema_decay", 0, 1, false)
	c.floatIn("diffusion.ema_min_decay", 0, 1, false)
	if df := s.Diffusion; df.EMAMinDecay > df.EMADecay {
		c.fail([]string{"diffusion.ema_min_decay", "diffusion.ema_decay"}, "%s is greater than %s",
			c.kv("diffusion.ema_min_decay"), c.kv("diffusion.ema_decay"))
	}
	c.intAtLeast("diffusion.ema_update_after_step", 0)
	c.positive("diffusion.ema_inv_gamma")
	c.positive("diffusion.ema_power")
	if s.Diffusion.UNetConfig != "" && !s.Diffusion.FromScratch {
		c.fail([]string{"diffusion.unet_config", "diffusion.from_scratch"}, "%s needs %s: a fine-tuned UNet keeps model.path's architecture",
			c.kv("diffusion.unet_config"), c.kv("diffusion.from_scratch"))
	}

	// [vae]
	c.oneOf("vae.reconstruction", "l1", "l2")
	c.nonNegative("vae.kl_weight")
	c.listOfNames("vae.validation_sources", false)
	c.intAtLeast("vae.validation_images", 1)
	c.intAtLeast("vae.grid_images", 1)
	c.intAtLeast("vae.scaling_images", 2)

	// [data]
	c.listOfNames("data.sources", false)
	c.oneOf("data.format", "auto", "webdataset", "parquet", "imagefolder")
	c.intAtLeast("data.generate", 0)
	if s.Data.Generate > 0 && len(s.Data.Sources) > 0 {
		c.fail([]string{"data.generate", "data.sources"}, "%s and %s are both set: generate synthetic images or read sources, not both",
			c.kv("data.generate"), c.kv("data.sources"))
	}
	c.imageSize("data.resolution", false)
	c.buckets()
	c.oneOf("data.interpolation", "bilinear", "bicubic", "lanczos", "box", "hamming", "nearest")
	c.intAtLeast("data.batch_size", 1)
	c.intAtLeast("data.workers", 0)
	c.intAtLeast("data.shuffle_buffer", 0)
	c.nonEmpty("data.image_column")
	c.nonEmpty("data.caption_column")
	c.intAtLeast("data.min_width", 0)
	c.intAtLeast("data.min_height", 0)
	c.floatIn("data.max_watermark", 0, 1, false)
	c.nonEmpty("data.width_field")
	c.nonEmpty("data.height_field")
	c.nonEmpty("data.watermark_field")
	c.intAtLeast("data.max_consecutive_drops", 1)
	c.intAtLeast("data.vae_encode_batch_size", 1)
	if s.Data.Cache != "" && !s.Data.CenterCrop {
		c.fail([]string{"data.center_crop", "data.cache"}, "%s with %s: a cache holds one crop per sample, and random crops differ every epoch; set data.center_crop = true (or train from images)",
			c.kv("data.center_crop"), c.kv("data.cache"))
	}

	// [optim]
	o := s.Optim
	c.positive("optim.lr")
	c.floatIn("optim.beta1", 0, 1, true)
	c.floatIn("optim.beta2", 0, 1, true)
	c.nonNegative("optim.weight_decay")
	c.positive("optim.eps")
	c.nonNegative("optim.max_grad_norm")
	c.oneOf("optim.schedule", "constant", "constant_with_warmup", "linear", "cosine")
	c.intAtLeast("optim.warmup_steps", 0)
	c.intAtLeast("optim.max_train_steps", 1)
	c.intAtLeast("optim.gradient_accumulation_steps", 1)
	if o.Schedule != "constant" && o.WarmupSteps > o.MaxTrainSteps && o.MaxTrainSteps >= 1 {
		c.fail([]string{"optim.warmup_steps", "optim.max_train_steps"}, "%s is greater than %s: the %s schedule would never finish warming up",
			c.kv("optim.warmup_steps"), c.kv("optim.max_train_steps"), quote(o.Schedule))
	}

	// [run]
	r := s.Run
	c.nonEmpty("run.output_dir")
	c.intAtLeast("run.checkpoint_every", 0)
	c.intAtLeast("run.checkpoints_keep", 0)
	c.intAtLeast("run.validation_every", 0)
	c.listOfNames("run.allow_changes", false)
	for _, k := range r.AllowChanges {
		if _, ok := fieldByKey[k]; !ok {
			c.fail([]string{"run.allow_changes"}, "%s: %s is not a key (see -print-config for every key)", c.kv("run.allow_changes"), quote(k))
		}
	}
	c.listOfNames("run.validation_prompts", false)
	if r.ValidationEvery > 0 && s.Task != "vae" {
		for _, key := range []string{"run.validation_prompts", "run.validation_inference_steps"} {
			if fieldByKey[key].value(&s).Len() == 0 {
				c.fail([]string{key, "run.validation_every"}, "%s is empty but %s asks for validation (0 turns it off)",
					c.kv(key), c.kv("run.validation_every"))
			}
		}
	}
	for _, n := range r.ValidationInferenceSteps {
		if s.Task == "diffusion" {
			// DDIM on the teacher's own schedule.
			if n < 1 || n > TrainTimesteps {
				c.fail([]string{"run.validation_inference_steps"}, "%s: %d DDIM steps is outside 1..%d",
					c.kv("run.validation_inference_steps"), n, TrainTimesteps)
			}
			continue
		}
		if n < 1 || (ddimOK && n > d.NumDDIMTimesteps) { // a bad num_ddim_timesteps is reported already
			c.fail([]string{"run.validation_inference_steps", "distill.num_ddim_timesteps"},
				"%s: %d steps is outside 1..%d (distill.num_ddim_timesteps, the LCM sampler's original_inference_steps)",
				c.kv("run.validation_inference_steps"), n, d.NumDDIMTimesteps)
		}
	}
	c.nonNegative("run.validation_guidance")
	c.imageSize("run.validation_width", true)
	c.imageSize("run.validation_height", true)
	c.intAtLeast("run.log_every", 1)
	c.intAtLeast("run.eval_every", 0)

	// [eval]
	e := s.Eval
	c.intAtLeast("eval.reference_steps", 1)
	if e.ReferenceSteps > TrainTimesteps {
		c.fail([]string{"eval.reference_steps"}, "%s: %d DDIM steps is more than %d", c.kv("eval.reference_steps"), e.ReferenceSteps, TrainTimesteps)
	}
	if r.EvalEvery > 0 && len(e.StudentSteps) == 0 {
		c.fail([]string{"eval.student_steps", "run.eval_every"}, "%s is empty but %s asks for evaluation (0 turns it off)",
			c.kv("eval.student_steps"), c.kv("run.eval_every"))
	}
	for _, n := range e.StudentSteps {
		if n < 1 || (ddimOK && n > d.NumDDIMTimesteps) {
			c.fail([]string{"eval.student_steps", "distill.num_ddim_timesteps"},
				"%s: %d steps is outside 1..%d (distill.num_ddim_timesteps)", c.kv("eval.student_steps"), n, d.NumDDIMTimesteps)
		}
	}
	c.nonNegative("eval.teacher_guidance")
	c.nonNegative("eval.student_guidance")
	c.nonNegative("eval.lora_guidance")
	c.listOfNames("eval.prompts", false)
	if r.EvalEvery > 0 && len(e.Prompts) == 0 && e.Classifier == "" && len(r.ValidationPrompts) == 0 {
		c.fail([]string{"eval.prompts", "run.eval_every"}, "%s asks for evaluation but there are no prompts: set eval.prompts, eval.classifier (one prompt per class) or run.validation_prompts",
			c.kv("run.eval_every"))
	}
	c.intAtLeast("eval.samples_per_prompt", 1)
	c.intAtLeast("eval.seed", 0)
	c.intAtLeast("eval.batch_size", 1)
	if e.RealImages != "" && e.Classifier == "" {
		c.fail([]string{"eval.real_images", "eval.classifier"}, "%s: the Fréchet distance needs eval.classifier (its features)", c.kv("eval.real_images"))
	}
	c.intAtLeast("eval.real_limit", 0)
	if name, _, _ := strings.Cut(r.Backend, ":"); r.Backend != "" && name != "go" && name != "xla" {
		c.fail([]string{"run.backend"}, `%s must be "", "go" or "xla", optionally followed by ":config"`, c.kv("run.backend"))
	}
	c.oneOf("run.mixed_precision", "no", "bf16", "fp16")
	c.positive("run.loss_scale_init")
	c.intAtLeast("run.loss_scale_growth_interval", 1)

	return c
}
