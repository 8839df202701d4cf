package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/evaluation"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/sampling"
)

// evalDir is the folder the evaluation of step writes: eval.json,
// grid.png and samples/, as the eval command's output folder.
func evalDir(out string, step int) string {
	return filepath.Join(out, "eval", fmt.Sprintf("step-%08d", step))
}

// evalKey is the metrics.jsonl key of one measure of an evaluation row,
// named like the row in eval check's assertions: "eval/student/lcm/4/latent_rmse".
func evalKey(row evaluation.Row, measure string) string {
	return fmt.Sprintf("eval/%s/%s/%d/%s", row.Model, row.Sampler, row.Steps, measure)
}

// evaluator is run.eval_every's evaluation, built at its first use: the
// teacher's reference sampler, the student's sampler (which reads the
// trained weights at every call) and the classifier.
type evaluator struct {
	plan evaluation.Plan
	free []func()
}

func (e *evaluator) close() {
	for _, f := range e.free {
		f()
	}
}

// newEvaluator builds the [eval] section's plan around the run's models.
func (r *run) newEvaluator() (*evaluator, error) {
	s, es := r.spec, r.spec.Eval
	cfg := evaluation.Config{
		Prompts: es.Prompts, PromptTemplate: datasets.DefaultCaptionTemplate,
		Classifier: es.Classifier, RealImages: es.RealImages, RealLabels: es.RealLabels, RealLimit: es.RealLimit,
	}
	if len(cfg.Prompts) == 0 && cfg.Classifier == "" {
		cfg.Prompts = s.Run.ValidationPrompts
	}
	e := &evaluator{}
	// The teacher samples as validation does: with the encoders a run from
	// a latent cache loads now, in the frozen networks' precision.
	if err := r.loadEncoders(); err != nil {
		return nil, err
	}
	teacher, err := sampling.NewSampler(r.backend, r.pipe, r.pipe.UNet, nil, r.samplerOptions())
	if err != nil {
		return nil, err
	}
	e.free = append(e.free, teacher.Finalize)
	// The student the run exports as the pipeline's UNet: the trained
	// weights (not the EMA target), or the LoRA on the teacher.
	student := r.pipe.UNet
	guidance := es.LoRAGuidance
	if r.adapters == nil {
		student = &unet.Model{Config: r.studentCfg, Weights: r.distiller.Student, RawConfig: r.pipe.UNet.RawConfig}
		guidance = es.StudentGuidance
	}
	ss, err := r.sampler("student", student)
	if err != nil {
		e.close()
		return nil, err
	}
	e.plan = evaluation.Plan{
		Reference: evaluation.Candidate{Model: "teacher", Sampler: teacher, Scheduler: "ddim",
			Guidance: es.TeacherGuidance, Steps: []int{es.ReferenceSteps}},
		Candidates: []evaluation.Candidate{{Model: "student", Sampler: ss, Scheduler: "lcm", Guidance: guidance,
			Steps: es.StudentSteps, OriginalSteps: s.Distill.NumDDIMTimesteps}},
		SamplesPerPrompt: es.SamplesPerPrompt, Seed: uint64(es.Seed), BatchSize: es.BatchSize,
		Settings: es, Machine: r.result.Backend,
	}
	if err := e.plan.SetSize(r.pipe); err != nil {
		e.close()
		return nil, err
	}
	free, err := e.plan.LoadClassifier(cfg, r.backend, r.nnOpts)
	e.free = append(e.free, free)
	if err == nil {
		e.plan.Prompts, err = cfg.ResolvePrompts(e.plan.Labels)
	}
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// evaluate runs the evaluation of step: its report and grid go to
// evalDir, its metrics to metrics.jsonl (one line holding "step" and
// every row's measures under evalKey names) and to Result.Metrics.
func (r *run) evaluate(ctx context.Context, step int) error {
	if r.eval == nil {
		e, err := r.newEvaluator()
		if err != nil {
			return fmt.Errorf("run.eval_every: %w", err)
		}
		r.eval = e
	}
	plan := r.eval.plan
	plan.OutputDir = evalDir(r.spec.Run.OutputDir, step)
	if err := os.MkdirAll(plan.OutputDir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(r.log, "evaluation at step %d:\n", step)
	rep, err := evaluation.Evaluate(ctx, plan, evaluation.Options{Log: r.log})
	if err != nil {
		return fmt.Errorf("evaluation at step %d: %w", step, err)
	}
	line := map[string]any{"step": step}
	if r.result.Metrics == nil {
		r.result.Metrics = map[string]float64{}
	}
	put := func(row evaluation.Row, measure string, v *float64) {
		if v != nil {
			line[evalKey(row, measure)] = *v
			r.result.Metrics[evalKey(row, measure)] = *v
		}
	}
	for _, row := range rep.Rows {
		if !row.Reference { // the reference's distances to itself are 0
			put(row, "latent_rmse", &row.LatentRMSE)
			put(row, "pixel_psnr_db", row.PixelPSNR)
		}
		put(row, "frechet_distance", row.Frechet)
		put(row, "prompt_accuracy", row.PromptAccuracy)
		put(row, "seconds_per_image", &row.SecondsPerImage)
	}
	if err := r.logLine(line); err != nil {
		return err
	}
	// Written last: its presence says the evaluation of step is complete.
	return evaluation.WriteReport(filepath.Join(plan.OutputDir, evaluation.ReportFile), rep)
}

// owedEvaluation runs the evaluation of the restored step when its report
// is missing: the run was killed between checkpoint N and evaluation N.
func (r *run) owedEvaluation(ctx context.Context, step int) error {
	every := r.spec.Run.EvalEvery
	if every <= 0 || step == 0 || step%every != 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(evalDir(r.spec.Run.OutputDir, step), evaluation.ReportFile)); err == nil {
		return nil
	}
	fmt.Fprintf(r.log, "running the evaluation of step %d, which the interrupted run did not finish\n", step)
	return r.evaluate(ctx, step)
}
