// Package runner runs one distillation experiment from a validated spec:
// it builds the teacher, student (full or LoRA), EMA target, VAE, text
// encoders and data stream, compiles the distillation step once, runs the
// loop with metrics, progress, checkpoints, validation grids and resume, and
// exports diffusers-loadable artifacts.
//
// The flow is one way: spec → models and data → compiled step → loop →
// artifacts. Depends on experiments/spec, lcm, models/..., datasets and
// backend. The experiments command and the notebooks both call Run.
package runner
