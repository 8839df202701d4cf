package evaluation

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/gomlx/compute"

	"github.com/golcm/golcm/models/classifier"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/sampling"
)

// RunOptions are the backend and where Run reports.
type RunOptions struct {
	Backend compute.Backend
	NN      nn.Options
	Machine string // the backend's description, for the timing label
	Options
}

// Run loads the models a Config names, evaluates them, and writes
// eval.json, grid.png and samples/ into cfg.OutputDir.
func Run(ctx context.Context, cfg Config, o RunOptions) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var finalize []func()
	defer func() {
		for _, f := range finalize {
			f()
		}
	}()
	// Weights go straight into the backend's buffers (pipeline.LoadOn), as
	// `golcm sample` reads them: sampling only reads them, and they are held
	// once rather than as host copies and buffers.
	load := func(dir string) (*pipeline.Pipeline, error) { return pipeline.LoadOn(o.Backend, dir, "", "", "") }
	sampler := func(p *pipeline.Pipeline, adapters *lora.Adapters) (*sampling.Sampler, error) {
		s, err := sampling.NewSampler(o.Backend, p, nil, adapters, o.NN)
		if err != nil {
			return nil, err
		}
		finalize = append(finalize, s.Finalize)
		return s, nil
	}
	teacher, err := load(cfg.Teacher)
	if err != nil {
		return nil, fmt.Errorf("eval.teacher: %w", err)
	}
	ts, err := sampler(teacher, nil)
	if err != nil {
		return nil, err
	}
	plan := Plan{
		Reference:        Candidate{Model: "teacher", Sampler: ts, Scheduler: "ddim", Guidance: cfg.TeacherGuidance, Steps: []int{cfg.ReferenceSteps}},
		SamplesPerPrompt: cfg.SamplesPerPrompt, Seed: cfg.Seed, BatchSize: cfg.BatchSize,
		Width: cfg.Width, Height: cfg.Height, OutputDir: cfg.OutputDir, Settings: cfg, Machine: o.Machine,
	}
	if err := plan.SetSize(teacher); err != nil {
		return nil, err
	}
	if len(cfg.TeacherSteps) > 0 {
		plan.Candidates = append(plan.Candidates, Candidate{Model: "teacher", Sampler: ts, Scheduler: "ddim", Guidance: cfg.TeacherGuidance, Steps: cfg.TeacherSteps})
	}
	if cfg.Undistilled {
		plan.Candidates = append(plan.Candidates, Candidate{Model: "undistilled", Sampler: ts, Scheduler: "lcm", Guidance: cfg.LoRAGuidance, Steps: cfg.StudentSteps})
	}
	if cfg.Student != "" {
		p, err := load(cfg.Student)
		if err != nil {
			return nil, fmt.Errorf("eval.student: %w", err)
		}
		s, err := sampler(p, nil)
		if err != nil {
			return nil, err
		}
		plan.Candidates = append(plan.Candidates, Candidate{Model: "lcm", Sampler: s, Scheduler: "lcm", Guidance: cfg.StudentGuidance, Steps: cfg.StudentSteps})
	}
	if cfg.LoRA != "" {
		base := teacher
		if cfg.LoRABase != "" && cfg.LoRABase != cfg.Teacher { // the teacher is loaded already
			if base, err = load(cfg.LoRABase); err != nil {
				return nil, fmt.Errorf("eval.lora_base: %w", err)
			}
		}
		adapters, err := lora.Read(cfg.LoRA, base.UNet.Config.ParamShapes())
		if err != nil {
			return nil, fmt.Errorf("eval.lora: %w", err)
		}
		s, err := sampler(base, adapters)
		if err != nil {
			return nil, err
		}
		plan.Candidates = append(plan.Candidates, Candidate{Model: "lcm-lora", Sampler: s, Scheduler: "lcm", Guidance: cfg.LoRAGuidance, Steps: cfg.StudentSteps})
	}
	free, err := plan.LoadClassifier(cfg, o.Backend, o.NN)
	if err != nil {
		return nil, err
	}
	finalize = append(finalize, free)
	if plan.Prompts, err = cfg.ResolvePrompts(plan.Labels); err != nil {
		return nil, err
	}
	rep, err := Evaluate(ctx, plan, o.Options)
	if err != nil {
		return nil, err
	}
	if err := WriteReport(filepath.Join(cfg.OutputDir, ReportFile), rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// LoadClassifier gives the plan cfg's classifier (eval.classifier: the
// prompt accuracy) and real set (eval.real_images: the Fréchet distance);
// without a classifier it does nothing. free releases the classifier's
// compiled graphs.
func (p *Plan) LoadClassifier(cfg Config, b compute.Backend, o nn.Options) (free func(), err error) {
	free = func() {}
	if cfg.Classifier == "" {
		return free, nil
	}
	m, err := classifier.Load(cfg.Classifier)
	if err != nil {
		return free, fmt.Errorf("eval.classifier: %w", err)
	}
	r, err := classifier.NewRunner(b, m, o, 0)
	if err != nil {
		return free, err
	}
	p.Classifier, p.Labels = r, m.Config.Labels
	if cfg.RealImages != "" {
		labels := cfg.RealLabels
		if labels == "" {
			labels = classifier.LabelsBeside(cfg.RealImages)
		}
		if p.Real, err = classifier.ReadIDX(cfg.RealImages, labels, m.Config.ImageSize, cfg.RealLimit); err != nil {
			r.Finalize()
			return free, fmt.Errorf("eval.real_images: %w", err)
		}
	}
	return r.Finalize, nil
}

// SetSize fills a zero Width or Height with the teacher's default size, and
// LatentShape from the size.
func (p *Plan) SetSize(teacher *pipeline.Pipeline) error {
	if p.Width == 0 || p.Height == 0 {
		h, w, err := teacher.DefaultSize()
		if err != nil {
			return err
		}
		if p.Width == 0 {
			p.Width = w
		}
		if p.Height == 0 {
			p.Height = h
		}
	}
	f := teacher.VAEScaleFactor()
	p.LatentShape = [3]int{teacher.UNet.Config.InChannels, p.Height / f, p.Width / f}
	return nil
}
