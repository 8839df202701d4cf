package runner

import (
	"fmt"
	"image"
	"os"
	"path/filepath"

	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/sampling"
)

// validateLCD samples the validation prompts at every configured step count
// from the student (and, for full distillation, the EMA target) and saves
// one PNG grid per model: rows are prompts, columns step counts.
func (r *run) validateLCD(step int) error {
	s := r.spec
	if len(s.Run.ValidationPrompts) == 0 || len(s.Run.ValidationInferenceSteps) == 0 {
		return nil
	}
	dir := filepath.Join(s.Run.OutputDir, "validation")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	models := map[string]*unet.Model{}
	if r.adapters != nil {
		models["student"] = r.pipe.UNet
	} else {
		models["student"] = &unet.Model{Config: r.studentCfg, Weights: r.distiller.Student, RawConfig: r.pipe.UNet.RawConfig}
		models["target"] = &unet.Model{Config: r.studentCfg, Weights: r.distiller.Target, RawConfig: r.pipe.UNet.RawConfig}
	}
	for name, m := range models {
		sampler, err := r.sampler(name, m)
		if err != nil {
			return err
		}
		rows := make([][]*image.RGBA, len(s.Run.ValidationPrompts))
		for _, steps := range s.Run.ValidationInferenceSteps {
			res, err := sampler.Sample(sampling.SampleRequest{
				Prompts: s.Run.ValidationPrompts, Steps: steps, OriginalSteps: s.Distill.NumDDIMTimesteps,
				Guidance: s.Run.ValidationGuidance, Seed: uint64(s.Run.ValidationSeed),
				Width: s.Run.ValidationWidth, Height: s.Run.ValidationHeight,
			})
			if err != nil {
				return fmt.Errorf("validation at step %d (%s, %d steps): %w", step, name, steps, err)
			}
			for i, img := range res.Images {
				rows[i] = append(rows[i], img)
			}
		}
		path := validationGrid(s.Run.OutputDir, name, step)
		if err := sampling.SaveGrid(path, rows, s.Run.ValidationPrompts, s.Run.ValidationInferenceSteps); err != nil {
			return err
		}
	}
	return nil
}

// sampler returns (compiling once) the validation sampler of a model; it
// reads the model's weights at every call, so it follows training.
func (r *run) sampler(name string, m *unet.Model) (*sampling.Sampler, error) {
	if r.samplers == nil {
		r.samplers = map[string]*sampling.Sampler{}
	}
	if sm, ok := r.samplers[name]; ok {
		return sm, nil
	}
	if err := r.loadEncoders(); err != nil {
		return nil, err
	}
	sm, err := sampling.NewSampler(r.backend, r.pipe, m, r.adapters, r.samplerOptions())
	if err != nil {
		return nil, err
	}
	r.samplers[name] = sm
	return sm, nil
}
