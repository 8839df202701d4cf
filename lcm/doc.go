// Package lcm is the method of Latent Consistency Distillation: everything
// between "a teacher UNet" and "a few-step sampler" that is not a network.
//
// It holds, in plain host-side Go (float32, no GoMLX):
//   - the noise schedule built from a diffusers scheduler_config.json
//     (betas, alphas_cumprod, a(t) = sqrt(ac[t]), s(t) = sqrt(1-ac[t]));
//   - conversions between epsilon, v and sample predictions and x0 / eps;
//   - the DDIM solver on the skipped timestep grid used to build targets;
//   - the consistency boundary scalings c_skip / c_out;
//   - the guidance-scale embedding and the UNet's sinusoidal timestep
//     embedding;
//   - diffusers' LCMScheduler (timestep selection and the multistep
//     consistency step).
//
// The distillation step (one compiled GoMLX graph: student, teacher with
// guidance, DDIM step, target, loss) lives in this package too and takes its
// per-sample coefficients from the functions above, so training and sampling
// share one set of numerics. Its inputs are named once (batchInputs in
// distill.go); the student and target passes are each a Denoiser; the
// gradients, clipping, AdamW, accumulation and EMA are package train's.
//
// The host functions reproduce diffusers v0.26.3 running on a CPU in float32,
// rounding for rounding where that is feasible: the comments name the torch
// kernel whose arithmetic is being matched. The golden tests check this
// against ../shared/fixtures.
//
// The few-step text-to-image sampler that runs the LCMScheduler around a
// whole pipeline (text encoders, UNet, VAE, LoRA) is package sampling's: lcm
// is the method and never imports a pipeline (imports_test.go checks it).
//
// The host numerics (schedule.go, prediction.go, solver.go, scalings.go,
// guidance.go, scheduler.go) depend on the standard library only; the
// distillation step depends on GoMLX, models/unet, models/nn, models/lora,
// losses and train.
package lcm
