package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/unet"
)

// export writes what diffusers loads: for full distillation unet/ (the
// student) and unet_target/ (the EMA target) with config.json, plus a
// model_index.json pipeline folder around them whose other components link
// to the teacher's; for LoRA pytorch_lora_weights.safetensors.
func (r *run) export() error {
	out := r.spec.Run.OutputDir
	if r.adapters != nil {
		path := filepath.Join(out, lora.FileName)
		if err := r.adapters.Write(path, lora.FormatDiffusers, "F32"); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		r.result.Exported = append(r.result.Exported, path)
		return nil
	}
	d := r.distiller
	teacher := r.pipe.UNet
	for name, w := range map[string]*unet.Model{
		"unet":        {Config: r.studentCfg, Weights: d.Student, RawConfig: teacher.RawConfig},
		"unet_target": {Config: r.studentCfg, Weights: d.Target, RawConfig: teacher.RawConfig},
	} {
		dir := filepath.Join(out, name)
		if err := w.Save(dir); err != nil {
			return fmt.Errorf("export %s: %w", dir, err)
		}
		r.result.Exported = append(r.result.Exported, dir)
	}
	return r.exportPipeline()
}

// exportPipeline makes the output folder a LatentConsistencyModelPipeline /
// LCM SDXL pipeline: model_index.json, the student unet/, symbolic links to
// the teacher's other components and an LCMScheduler config, so
// `sample -model <output_dir>` and diffusers' from_pretrained both work.
func (r *run) exportPipeline() error {
	out := r.spec.Run.OutputDir
	index := map[string]any{"_class_name": "LatentConsistencyModelPipeline", "_diffusers_version": "0.26.3"}
	comps := map[string][2]string{
		"unet": {"diffusers", "UNet2DConditionModel"}, "vae": {"diffusers", "AutoencoderKL"},
		"scheduler": {"diffusers", "LCMScheduler"}, "text_encoder": {"transformers", "CLIPTextModel"},
		"tokenizer": {"transformers", "CLIPTokenizer"},
	}
	if len(r.pipe.TextEncoders) == 2 {
		index["_class_name"] = "StableDiffusionXLPipeline"
		comps["text_encoder_2"] = [2]string{"transformers", "CLIPTextModelWithProjection"}
		comps["tokenizer_2"] = [2]string{"transformers", "CLIPTokenizer"}
		index["force_zeros_for_empty_prompt"] = true
	}
	if index["_class_name"] == "LatentConsistencyModelPipeline" {
		index["requires_safety_checker"] = false
		index["safety_checker"] = []any{nil, nil}
		index["feature_extractor"] = []any{nil, nil}
	}
	for name, c := range comps {
		index[name] = []string{c[0], c[1]}
		if name == "unet" || name == "scheduler" {
			continue
		}
		src := filepath.Join(r.pipe.Dir, name)
		if name == "vae" {
			src = r.pipe.VAEDir
		}
		src, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		link := filepath.Join(out, name)
		_ = os.Remove(link)
		if err := os.Symlink(src, link); err != nil {
			return fmt.Errorf("export: link %s → %s: %w", link, src, err)
		}
	}
	sched := map[string]any{
		"_class_name": "LCMScheduler", "num_train_timesteps": r.schedCfg.NumTrainTimesteps,
		"beta_start": r.schedCfg.BetaStart, "beta_end": r.schedCfg.BetaEnd,
		"beta_schedule": r.schedCfg.BetaSchedule, "prediction_type": string(r.schedule.PredictionType),
		"original_inference_steps": r.spec.Distill.NumDDIMTimesteps,
		"timestep_scaling":         r.spec.Distill.TimestepScalingFactor,
		"set_alpha_to_one":         true, "steps_offset": 1, "clip_sample": false, "timestep_spacing": "leading",
	}
	if err := writeJSON(filepath.Join(out, "scheduler", "scheduler_config.json"), sched); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "model_index.json"), index); err != nil {
		return err
	}
	r.result.Exported = append(r.result.Exported, filepath.Join(out, "model_index.json"))
	return nil
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
