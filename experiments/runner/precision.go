package runner

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"

	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/train"
)

// precision is run.mixed_precision's dtype: zero for "no" (float32). The
// run sets r.precision.dtype from it before the task builds its step.
func precision(mixed string) dtypes.DType {
	switch mixed {
	case "bf16":
		return dtypes.BFloat16
	case "fp16":
		return dtypes.Float16
	}
	return dtypes.InvalidDType
}

// mixedPrecision is how a run's networks are stored and run
// (run.mixed_precision), fixed after the pipeline loads.
type mixedPrecision struct {
	dtype dtypes.DType // zero: float32 throughout
	// vae32: the VAE stays float32 (SDXL's without an override).
	vae32 bool
}

// encoderOptions are the text encoders' options: computed in the dtype
// their weights are stored in.
func (r *run) encoderOptions() nn.Options {
	opts := r.nnOpts
	opts.ComputeDType = r.precision.dtype
	return opts
}

// vaeOptions are the VAE's.
func (r *run) vaeOptions() nn.Options {
	if r.precision.vae32 {
		return r.nnOpts
	}
	return r.encoderOptions()
}

// applyPrecision stores the frozen networks of an lcd run in
// run.mixed_precision's dtype, as the reference scripts move the teacher
// UNet, VAE and text encoders to weight_dtype: the teacher UNet (the LoRA
// base UNet too), the text encoders, and the VAE except SDXL's, which the
// SDXL scripts keep in float32 because it overflows in float16, unless
// model.vae names another VAE (the fp16-fix one); spec validation allows
// mixed precision for task lcd alone. It runs after the task is built, so a
// full student is cloned from the float32 teacher (the step's programs
// read the converted tensors when they first run).
func (r *run) applyPrecision() error {
	mp := &r.precision
	if mp.dtype == dtypes.InvalidDType {
		return nil
	}
	mp.vae32 = r.pipe.Kind() == pipeline.SDXL && r.spec.Model.VAE == ""
	return r.convertFrozen(append([]*nn.Weights{r.pipe.UNet.Weights}, r.encoderWeights()...))
}

// encoderWeights are the VAE's and the text encoders' weights; none while
// a run from a latent cache has not loaded them (loadEncoders).
func (r *run) encoderWeights() []*nn.Weights {
	if !r.pipe.EncodersLoaded() {
		return nil
	}
	ws := []*nn.Weights{r.pipe.VAE.Weights}
	for _, te := range r.pipe.TextEncoders {
		ws = append(ws, te.Weights)
	}
	return ws
}

// convertFrozen stores frozen networks' weights in the run's precision (the
// VAE stays float32 when vae32) and logs their bytes before and after.
func (r *run) convertFrozen(frozen []*nn.Weights) error {
	mp := &r.precision
	if mp.dtype == dtypes.InvalidDType || len(frozen) == 0 {
		return nil
	}
	var before, after int64
	for _, w := range frozen {
		before += w.Bytes()
		if w != r.pipe.VAE.Weights || !mp.vae32 {
			if err := w.Convert(mp.dtype); err != nil {
				return fmt.Errorf("run.mixed_precision = %q: %w", r.spec.Run.MixedPrecision, err)
			}
		}
		after += w.Bytes()
	}
	fmt.Fprintf(r.log, "mixed precision %s: frozen weights %.1f MiB, %.1f MiB in float32 (%d and %d bytes)\n",
		r.spec.Run.MixedPrecision, float64(after)/(1<<20), float64(before)/(1<<20), after, before)
	return nil
}

// distillPrecision sets the step's precision and, for fp16, its dynamic
// loss scaling (run.loss_scale_init, run.loss_scale_growth_interval).
func (r *run) distillPrecision(cfg *lcm.DistillConfig) {
	cfg.Precision = r.precision.dtype
	if r.precision.dtype == dtypes.Float16 {
		cfg.LossScaling = &train.LossScaling{InitScale: r.spec.Run.LossScaleInit, GrowthInterval: r.spec.Run.LossScaleGrowthInterval}
	}
}

// samplerOptions are the validation sampler's: it runs the whole pipeline
// in the frozen networks' precision, as the scripts' log_validation builds
// its pipeline with torch_dtype=weight_dtype; fp16 with a float32 SDXL VAE
// samples in float32 instead, since that VAE overflows in float16.
func (r *run) samplerOptions() nn.Options {
	opts := r.encoderOptions()
	if r.precision.dtype == dtypes.Float16 && r.precision.vae32 {
		opts.ComputeDType = dtypes.Float32
	}
	return opts
}

// scalerMetrics are fp16's loss-scale values for metrics.jsonl.
func scalerMetrics(t *train.Trainer, dtype dtypes.DType) map[string]any {
	if dtype != dtypes.Float16 {
		return nil
	}
	return map[string]any{"loss_scale": t.Scaler.Scale, "skipped_steps": t.Scaler.Skipped}
}
