// Package evaluation measures few-step sample quality: it samples the same
// prompts from the same initial noise with a teacher (DDIM with
// classifier-free guidance, at several step counts and a reference count)
// and its distilled students (a full LCM and/or an LCM-LoRA, with the LCM
// scheduler), and reports per (model, sampler, steps) the latent RMSE and
// pixel PSNR to the teacher's reference sample, and with a classifier the
// Fréchet distance of its features to a real image set and the prompt
// accuracy, plus the seconds per image on this machine.
//
// Run loads models by path (the eval command); Evaluate takes samplers
// already built, so a training loop can evaluate its in-memory student.
// Outputs: a Report (eval.json), a text table, a labelled PNG grid and each
// row's samples.
//
// Depends on sampling, metrics, models/{pipeline,lora,classifier,nn}.
package evaluation
