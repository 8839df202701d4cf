// Package sampling is the text-to-image side of a pipeline: the few-step
// sampler (diffusers' LatentConsistencyModelPipeline, and the SD/SDXL
// pipelines with an LCMScheduler or a DDIM teacher) around a
// models/pipeline's text encoders, UNet (optionally a student, optionally
// with LoRA adapters) and VAE, and the PNG files and captioned grids its
// images are saved as.
//
// The numerics (noise schedule, LCMScheduler, DDIMScheduler, prediction
// conversions) are package lcm's, shared with the distillation step; this
// package only runs them around the networks. The experiments command's
// `sample`, the runner's validation images and the notebooks all sample
// through it.
//
// Depends on GoMLX, lcm, models/{pipeline,clip,unet,vae,lora,nn}.
package sampling
