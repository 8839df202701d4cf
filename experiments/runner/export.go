package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// exportWeights writes what diffusers loads of a distillation: for full
// distillation unet/ (the student) and unet_target/ (the EMA target) with
// config.json, plus a self-contained model_index.json pipeline folder around
// them; for LoRA (target nil, the student is r.adapters' weights)
// pytorch_lora_weights.safetensors (and the other lora.formats).
func (r *run) exportWeights(student, target *nn.Weights) error {
	out := r.spec.Run.OutputDir
	if err := checkFinite(map[string]*nn.Weights{"student": student, "target": target}); err != nil {
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
		"unet":        {Config: r.studentCfg, Weights: student, RawConfig: teacher.RawConfig},
		"unet_target": {Config: r.studentCfg, Weights: target, RawConfig: teacher.RawConfig},
	} {
		dir := filepath.Join(out, name)
		if err := w.Save(dir); err != nil {
			return fmt.Errorf("export %s: %w", dir, err)
		}
		r.result.Exported = append(r.result.Exported, dir)
	}
	return r.exportPipeline()
}

// ExportCheckpoint writes what a run exports at its end (a self-contained
// pipeline folder, the LoRA files, or vae/) from the checkpoint folder dir into
// out, using the experiment the checkpoint was made by: a checkpoint
// becomes something `sample -model` and diffusers load. out must be new or
// empty; "" means <run>/exports/step-N.
func ExportCheckpoint(dir, out string, opts Options) (res *Result, err error) {
	if !isCheckpoint(dir) {
		return nil, fmt.Errorf("export: %s is not a checkpoint folder (no state.json)", dir)
	}
	s, _, err := checkpointSpec(dir)
	if err != nil {
		return nil, err
	}
	if out == "" {
		out = filepath.Join(filepath.Dir(filepath.Dir(dir)), exportsDir, filepath.Base(dir))
	}
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("export: %s is not empty; choose a new folder", out)
	}
	s.Run.OutputDir = out
	s.Model.InitTiny = false // the teacher must be the one the checkpoint was trained from
	r := &run{spec: s, opts: opts, log: opts.Log}
	if r.log == nil {
		r.log = os.Stderr
	}
	catchErr := backend.Catch(func() { res, err = r.exportCheckpoint(dir) })
	if catchErr != nil {
		return nil, catchErr
	}
	return res, err
}

func (r *run) exportCheckpoint(dir string) (*Result, error) {
	s := r.spec
	if err := r.loadTeacher(); err != nil {
		return nil, err
	}
	if s.Task != "lcd" {
		return r.exportTaskCheckpoint(dir)
	}
	names := []string{"student", "target"}
	if s.Distill.Mode == "lora" {
		names = names[:1]
	}
	loaded, st, err := loadCheckpoint(dir, names)
	if err != nil {
		return nil, err
	}
	student := loaded["student"]
	if s.Distill.Mode == "lora" {
		if r.adapters, err = lora.New(r.pipe.UNet.Config.ParamShapes(), loraConfig(s.LoRA), s.Run.Seed); err != nil {
			return nil, err
		}
		if err := replaceWeights(r.adapters.Weights, student); err != nil {
			return nil, fmt.Errorf("checkpoint %s: student: %w", dir, err)
		}
		student = r.adapters.Weights
	} else {
		r.studentCfg = studentConfig(r.pipe.UNet.Config, s.Distill.TimeCondProjDim)
		for _, name := range names {
			m := unet.Model{Config: r.studentCfg, Weights: loaded[name]}
			if err := m.CheckWeights(); err != nil {
				return nil, fmt.Errorf("checkpoint %s: %s does not fit the teacher %s: %w", dir, name, s.Model.Path, err)
			}
		}
	}
	if err := os.MkdirAll(s.Run.OutputDir, 0o755); err != nil {
		return nil, err
	}
	if err := r.exportWeights(student, loaded["target"]); err != nil {
		return nil, err
	}
	r.result.OutputDir, r.result.Steps, r.result.Checkpoint = s.Run.OutputDir, st.Step, dir
	fmt.Fprintf(r.log, "exported step %d of %s to %s\n", st.Step, dir, s.Run.OutputDir)
	return &r.result, nil
}

// exportTaskCheckpoint is exportCheckpoint for the tasks other than
// distillation: it builds the task, restores the checkpoint into it and
// runs the task's export.
func (r *run) exportTaskCheckpoint(dir string) (*Result, error) {
	b, choice, err := backend.Default(r.spec.Run.Backend)
	if err != nil {
		return nil, err
	}
	r.backend, r.nnOpts = b, nn.ForBackend(choice.Name())
	r.restoring = true
	r.task = r.newTask()
	if err := r.task.build(); err != nil {
		return nil, err
	}
	st, err := r.restore(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.spec.Run.OutputDir, 0o755); err != nil {
		return nil, err
	}
	if err := r.task.export(); err != nil {
		return nil, err
	}
	r.result.OutputDir, r.result.Steps, r.result.Checkpoint = r.spec.Run.OutputDir, st.Step, dir
	fmt.Fprintf(r.log, "exported step %d of %s to %s\n", st.Step, dir, r.spec.Run.OutputDir)
	return &r.result, nil
}

// loraConfig is the adapter configuration of a [lora] section.
func loraConfig(l spec.LoRASpec) lora.Config {
	return lora.Config{Rank: l.Rank, Alpha: l.Alpha, Dropout: l.Dropout, Targets: l.Targets}
}

// studentConfig is the full student's UNet config: the teacher's, with a
// guidance embedding of dim when the teacher has none.
func studentConfig(teacher *unet.Config, dim int) *unet.Config {
	cfg := *teacher
	if cfg.TimeCondProjDim == nil {
		cfg.TimeCondProjDim = &dim
	}
	return &cfg
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
	if err := r.copyComponents(len(r.pipe.TextEncoders) == 2); err != nil {
		return err
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

// copyComponents copies the pipeline's copiedComponents into the output
// folder (hard links where the filesystem allows).
func (r *run) copyComponents(sdxl bool) error {
	for _, name := range copiedComponents(sdxl) {
		src, variant := filepath.Join(r.pipe.Dir, name), r.spec.Model.Variant
		if name == "vae" {
			src = r.pipe.VAEDir
			if r.spec.Model.VAE != "" {
				variant = "" // an override VAE is read in full precision (pipeline.Load)
			}
		}
		if err := hub.CopyComponent(src, filepath.Join(r.spec.Run.OutputDir, name), variant); err != nil {
			return fmt.Errorf("export %s: %w", name, err)
		}
	}
	return nil
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
