package runner

import (
	"context"
	"fmt"

	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/train"
)

// task is what one kind of training (the experiment's task key) supplies
// to the run: what it trains and its compiled step, the weight groups a
// checkpoint holds, one step's batch, validation and the exported
// artifacts. The loop, checkpoints, resume, the run-folder rules and
// metrics.jsonl are the run's, the same for every task.
type task interface {
	// build loads (or initialises) what the task trains and compiles its
	// step; the run's pipeline is loaded.
	build() error
	// trainer is the task's optimizer state: Steps, Accumulating.
	trainer() *train.Trainer
	// groups are the weights a checkpoint holds, by name (nil entries are
	// skipped).
	groups() map[string]*nn.Weights
	// next draws the next (micro-)batch from the run's data and generator,
	// in a fixed order, and returns the step that trains on it and its
	// learning rate. A data error is returned before any step runs.
	next(ctx context.Context) (step func() (*lcm.StepResult, error), lr float64, err error)
	// metrics are the task's own values of the last step for metrics.jsonl.
	metrics() map[string]any
	// validate writes the validation artifacts of step.
	validate(step int) error
	// validationGrid is the file validate writes at step, so that a resumed
	// run can tell whether it still owes it.
	validationGrid(step int) string
	// export writes the run's final artifacts into run.output_dir.
	export() error
}

// newTask is the task of the run's experiment.
func (r *run) newTask() task {
	switch r.spec.Task {
	case "diffusion":
		return &diffusionTask{r: r}
	case "vae":
		return &vaeTask{r: r}
	}
	return &lcdTask{r: r}
}

// logFromScratch says that the task trains a freshly initialised model of
// params parameters, unless a checkpoint is about to replace its weights.
func (r *run) logFromScratch(task, model string, params int) {
	if !r.restoring {
		fmt.Fprintf(r.log, "%s: training %s from scratch (%d parameters)\n", task, model, params)
	}
}

// lcdTask is latent consistency distillation (lcm.Distiller): full or LoRA.
type lcdTask struct{ r *run }

func (t *lcdTask) build() error            { return t.r.buildStudent() }
func (t *lcdTask) trainer() *train.Trainer { return t.r.distiller.Trainer }
func (t *lcdTask) groups() map[string]*nn.Weights {
	d := t.r.distiller
	return map[string]*nn.Weights{"student": d.Student, "target": d.Target, "adam_m": d.AdamM, "adam_v": d.AdamV}
}

func (t *lcdTask) next(ctx context.Context) (func() (*lcm.StepResult, error), float64, error) {
	batch, err := t.r.stepBatch(ctx)
	if err != nil {
		return nil, 0, err
	}
	return func() (*lcm.StepResult, error) { return t.r.distiller.Step(batch) }, batch.LR, nil
}

func (t *lcdTask) metrics() map[string]any { return scalerMetrics(t.trainer(), t.r.precision.dtype) }
func (t *lcdTask) validate(step int) error { return t.r.validateLCD(step) }
func (t *lcdTask) validationGrid(step int) string {
	return validationGrid(t.r.spec.Run.OutputDir, "student", step)
}
func (t *lcdTask) export() error {
	return t.r.exportWeights(t.r.distiller.Student, t.r.distiller.Target)
}
