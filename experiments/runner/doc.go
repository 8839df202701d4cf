// Package runner runs one experiment from a validated spec. Its task says
// what is trained: a distillation (task "lcd": teacher, student full or
// LoRA, EMA target), a teacher UNet on the diffusion objective ("diffusion")
// or a VAE ("vae"); each task (task.go, diffusion.go, vae.go) supplies its
// models, compiled step, validation and exports, and the run gives every
// task the same loop with metrics, progress, checkpoints, resume and
// run-folder rules.
//
// The flow is one way: spec → models and data → compiled step → loop →
// artifacts. Depends on experiments/spec, lcm, train, objectives,
// models/..., datasets and backend. The experiments command and the
// notebooks both call Run.
package runner
