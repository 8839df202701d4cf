package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// export writes what diffusers loads: for full distillation unet/ (the
// student) and unet_target/ (the EMA target) with config.json, plus a
// self-contained model_index.json pipeline folder around them; for LoRA
// pytorch_lora_weights.safetensors (and the other lora.formats).
func (r *run) export() error {
	out := r.spec.Run.OutputDir
	d := r.distiller
	if err := checkFinite(map[string]*nn.Weights{"student": d.Student, "target": d.Target}); err != nil {
		return fmt.Errorf("export: not writing %s: %w", out, err)
	}
	if r.adapters != nil {
		for _, name := range r.spec.LoRA.Formats {
			f, err := lora.ParseFormat(name)
			if err != nil {
				return fmt.Errorf("lora.formats: %w", err)
			}
			path := filepath.Join(out, lora.FileNameFor(f))
			if err := r.adapters.Write(path, f, "F32"); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			r.result.Exported = append(r.result.Exported, path)
		}
		return nil
	}
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

// exportPipeline makes the output folder a self-contained
// LatentConsistencyModelPipeline / LCM SDXL pipeline: model_index.json, the
// student unet/, copies of the teacher's other components (hard links where
// the filesystem allows) and an LCMScheduler config, so the folder can be
// moved, archived or uploaded and `sample -model <output_dir>` and
// diffusers' from_pretrained both work without the teacher.
func (r *run) exportPipeline() error {
	out := r.spec.Run.OutputDir
	if err := writeModelIndex(out, r.pipe.Index, len(r.pipe.TextEncoders) == 2); err != nil {
		return err
	}
	for _, name := range copiedComponents(len(r.pipe.TextEncoders) == 2) {
		src, variant := filepath.Join(r.pipe.Dir, name), r.spec.Model.Variant
		if name == "vae" {
			src = r.pipe.VAEDir
			if r.spec.Model.VAE != "" {
				variant = "" // an override VAE is read in full precision (pipeline.Load)
			}
		}
		if err := hub.CopyComponent(src, filepath.Join(out, name), variant); err != nil {
			return fmt.Errorf("export %s: %w", name, err)
		}
	}
	sched := LCMSchedulerConfig(r.schedCfg, r.spec.Distill.NumDDIMTimesteps, r.spec.Distill.TimestepScalingFactor)
	if err := writeJSON(filepath.Join(out, "scheduler", "scheduler_config.json"), sched); err != nil {
		return err
	}
	r.result.Exported = append(r.result.Exported, filepath.Join(out, "model_index.json"))
	return nil
}

// copiedComponents are the teacher's components an exported pipeline
// carries besides its own unet/ and scheduler/.
func copiedComponents(sdxl bool) []string {
	names := []string{"text_encoder", "tokenizer", "vae"}
	if sdxl {
		names = append(names, "text_encoder_2", "tokenizer_2")
	}
	return names
}

// writeModelIndex writes out/model_index.json for the exported pipeline:
// every component it lists is a folder of out. The text encoders',
// tokenizers' and VAE's classes are the teacher's (a CLIPTokenizerFast stays
// one); the pipeline class is diffusers' LCM pipeline for SD and the SDXL
// pipeline (which runs an LCMScheduler) for SD-XL.
func writeModelIndex(out string, teacher *hub.ModelIndex, sdxl bool) error {
	index := map[string]any{"_class_name": "LatentConsistencyModelPipeline", "_diffusers_version": "0.26.3"}
	comps := map[string][2]string{
		"unet": {"diffusers", "UNet2DConditionModel"}, "vae": {"diffusers", "AutoencoderKL"},
		"scheduler": {"diffusers", "LCMScheduler"}, "text_encoder": {"transformers", "CLIPTextModel"},
		"tokenizer": {"transformers", "CLIPTokenizer"},
	}
	if sdxl {
		index["_class_name"] = "StableDiffusionXLPipeline"
		comps["text_encoder_2"] = [2]string{"transformers", "CLIPTextModelWithProjection"}
		comps["tokenizer_2"] = [2]string{"transformers", "CLIPTokenizer"}
		index["force_zeros_for_empty_prompt"] = true
		if raw, ok := teacher.Options["force_zeros_for_empty_prompt"]; ok {
			index["force_zeros_for_empty_prompt"] = raw
		}
	} else {
		index["requires_safety_checker"] = false
		index["safety_checker"] = []any{nil, nil}
		index["feature_extractor"] = []any{nil, nil}
	}
	for _, name := range copiedComponents(sdxl) {
		if c, ok := teacher.Components[name]; ok && c.Library != "" && c.Class != "" {
			comps[name] = [2]string{c.Library, c.Class}
		}
	}
	for name, c := range comps {
		index[name] = []string{c[0], c[1]}
	}
	return writeJSON(filepath.Join(out, "model_index.json"), index)
}

// LCMSchedulerConfig is the scheduler an exported pipeline samples with: the
// teacher's config with every key diffusers' LCMScheduler takes carried over
// (beta_*, trained_betas, rescale_betas_zero_snr, prediction_type, clip and
// threshold settings, ...; keys the teacher's file leaves out hold
// LCMScheduler's defaults), so the exported alphas_cumprod are the ones the
// model was distilled on, plus the distillation grid (original_inference_steps)
// and the boundary scaling (timestep_scaling) of the run.
func LCMSchedulerConfig(teacher lcm.SchedulerConfig, numDDIMTimesteps int, timestepScaling float64) lcm.SchedulerConfig {
	cfg := teacher
	cfg.Path = ""
	cfg.ClassName = "LCMScheduler"
	cfg.OriginalInferenceSteps = numDDIMTimesteps
	cfg.TimestepScaling = timestepScaling
	return cfg
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
