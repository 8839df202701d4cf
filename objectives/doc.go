// Package objectives holds the training objectives of the tasks golcm trains besides distillation:
// the text-to-image diffusion loss of diffusers' train_text_to_image.py (epsilon or v targets,
// Min-SNR weighting, offset noise, input perturbation, caption dropout), the AutoencoderKL loss
// (L1 or L2 reconstruction plus a weighted KL term), diffusers' EMAModel decay schedule, and the
// evaluation helpers those tasks report (reconstruction PSNR, the latents' std behind the
// pipeline's scaling_factor).
//
// Loss terms are GoMLX graph functions to build into a compiled training step; the per-sample
// scalars they need (signal and noise scales, Min-SNR weights) are computed on the host from
// lcm.NoiseSchedule, the one place the noise schedule's numerics live, as lcm.Coefficients does for
// distillation. Random draws (timesteps, noise, caption dropout) come from the caller's seeded
// generator, so that a resumed run draws the same numbers.
//
// Files: diffusion.go (the diffusion objective), autoencoder.go (the VAE objective, KL, PSNR,
// latent statistics), ema.go (the EMA decay schedule). Depends on lcm (the noise schedule), losses and GoMLX.
package objectives
