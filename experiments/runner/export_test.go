package runner

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/pipeline"
)

// teacherSchedulers are teacher scheduler configs as diffusers pipelines
// ship them: SD's scaled_linear PNDM, a linear DDPM, a zero-terminal-SNR
// DDIM and one with trained_betas.
func teacherSchedulers() map[string]map[string]any {
	betas := make([]float64, 1000)
	for i := range betas {
		betas[i] = 1e-4 + 2e-5*float64(i) + 1e-5*math.Sin(float64(i)/7)
	}
	return map[string]map[string]any{
		"scaled_linear": {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
			"beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "set_alpha_to_one": false,
			"skip_prk_steps": true, "steps_offset": 1, "trained_betas": nil},
		"linear": {"_class_name": "DDPMScheduler", "beta_start": 0.0001, "beta_end": 0.02,
			"beta_schedule": "linear", "num_train_timesteps": 1000, "clip_sample": false},
		"zero_snr": {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
			"beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "rescale_betas_zero_snr": true,
			"prediction_type": "v_prediction", "timestep_spacing": "trailing"},
		"trained_betas": {"_class_name": "DDPMScheduler", "beta_schedule": "scaled_linear",
			"num_train_timesteps": 1000, "trained_betas": betas},
	}
}

// readSchedule reads a scheduler_config.json and builds its noise schedule.
func readSchedule(t *testing.T, path string) (lcm.SchedulerConfig, *lcm.NoiseSchedule) {
	t.Helper()
	cfg, err := lcm.ReadSchedulerConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := lcm.NewNoiseSchedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, s
}

// TestExportedSchedulerKeepsTeacherSchedule: the exported LCMScheduler
// config, read back, gives exactly the teacher's alphas_cumprod and
// prediction type for scaled_linear, linear, zero-terminal-SNR and
// trained_betas teachers.
func TestExportedSchedulerKeepsTeacherSchedule(t *testing.T) {
	dir := t.TempDir()
	for name, teacherJSON := range teacherSchedulers() {
		teacherPath := filepath.Join(dir, name+"-teacher.json")
		if err := writeJSON(teacherPath, teacherJSON); err != nil {
			t.Fatal(err)
		}
		teacherCfg, teacher := readSchedule(t, teacherPath)
		exported := filepath.Join(dir, name+"-lcm.json")
		if err := writeJSON(exported, LCMSchedulerConfig(teacherCfg, 50, 10)); err != nil {
			t.Fatal(err)
		}
		cfg, got := readSchedule(t, exported)
		if cfg.ClassName != "LCMScheduler" || cfg.OriginalInferenceSteps != 50 || cfg.TimestepScaling != 10 {
			t.Errorf("%s: exported %s, original_inference_steps %d, timestep_scaling %v; want LCMScheduler, 50, 10",
				name, cfg.ClassName, cfg.OriginalInferenceSteps, cfg.TimestepScaling)
		}
		if got.PredictionType != teacher.PredictionType {
			t.Errorf("%s: prediction_type %s, teacher %s", name, got.PredictionType, teacher.PredictionType)
		}
		worst := 0.0
		for i, ac := range teacher.AlphasCumprod {
			worst = max(worst, math.Abs(float64(got.AlphasCumprod[i]-ac)))
		}
		if worst != 0 {
			t.Errorf("%s: exported alphas_cumprod differ from the teacher's by up to %.3g (ac[999] %v vs %v)",
				name, worst, got.AlphasCumprod[999], teacher.AlphasCumprod[999])
		}
	}
}

// TestFullRunExportIsSelfContained distills a tiny teacher with a
// zero-terminal-SNR schedule and fp16-variant-only text encoder and VAE
// files, then moves the teacher away: the output folder still loads as a
// pipeline (no links into the teacher), its model_index.json lists exactly
// the folders it holds with the teacher's component classes, the copied
// weights carry no variant in their names, and its scheduler has the
// teacher's alphas_cumprod.
func TestFullRunExportIsSelfContained(t *testing.T) {
	root := t.TempDir()
	teacherDir := filepath.Join(root, "teacher")
	if err := pipeline.InitTiny(teacherDir, 3); err != nil {
		t.Fatal(err)
	}
	schedPath := filepath.Join(teacherDir, "scheduler", "scheduler_config.json")
	if err := writeJSON(schedPath, teacherSchedulers()["zero_snr"]); err != nil {
		t.Fatal(err)
	}
	_, teacherSchedule := readSchedule(t, schedPath)
	// Only fp16-variant files for every component (as many Hub repos have).
	for _, c := range []string{"unet", "vae", "text_encoder"} {
		dir := filepath.Join(teacherDir, c)
		w, err := hub.WeightFile(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(w)
		variantName := base[:len(base)-len(".safetensors")] + ".fp16.safetensors"
		if err := os.Rename(w, filepath.Join(dir, variantName)); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(root, "out")
	s := tinySpec(t, teacherDir, out)
	s.Model.InitTiny, s.Model.Variant = false, "fp16"
	s.Optim.MaxTrainSteps = 2
	s.Distill.NumDDIMTimesteps = 25
	if _, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(teacherDir, filepath.Join(root, "teacher-moved")); err != nil {
		t.Fatal(err)
	}

	err := filepath.Walk(out, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode()&os.ModeSymlink != 0 {
			t.Errorf("%s is a symbolic link", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(out, "", "", "")
	if err != nil {
		t.Fatalf("the export does not load without the teacher and without a variant: %v", err)
	}
	for _, c := range []string{"text_encoder", "vae"} {
		w, err := hub.WeightFile(filepath.Join(out, c), "")
		if err != nil || filepath.Base(w) != map[string]string{"text_encoder": "model.safetensors", "vae": "diffusion_pytorch_model.safetensors"}[c] {
			t.Errorf("%s weights: %q, %v; want a file named without a variant", c, w, err)
		}
	}

	checkModelIndex(t, out, "LatentConsistencyModelPipeline", map[string][]any{
		"unet": {"diffusers", "UNet2DConditionModel"}, "scheduler": {"diffusers", "LCMScheduler"},
		"vae": {"diffusers", "AutoencoderKL"}, "text_encoder": {"transformers", "CLIPTextModel"},
		"tokenizer": {"transformers", "CLIPTokenizer"},
	})

	cfg, got := readSchedule(t, p.SchedulerConfig)
	if cfg.OriginalInferenceSteps != 25 || !cfg.RescaleBetasZeroSNR {
		t.Errorf("exported scheduler: original_inference_steps %d, rescale_betas_zero_snr %v; want 25 and true",
			cfg.OriginalInferenceSteps, cfg.RescaleBetasZeroSNR)
	}
	if !slices.Equal(got.AlphasCumprod, teacherSchedule.AlphasCumprod) {
		t.Errorf("exported alphas_cumprod differ from the teacher's (ac[999] %v vs %v)",
			got.AlphasCumprod[999], teacherSchedule.AlphasCumprod[999])
	}
}

// checkModelIndex checks the model_index.json of an exported pipeline: the
// pipeline class, exactly the components of want with their classes, and a
// folder for each.
func checkModelIndex(t *testing.T, out, class string, want map[string][]any) {
	t.Helper()
	var index map[string]any
	data, err := os.ReadFile(filepath.Join(out, "model_index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatal(err)
	}
	if index["_class_name"] != class {
		t.Errorf("model_index.json _class_name %v, want %s", index["_class_name"], class)
	}
	for key, v := range index {
		pair, ok := v.([]any)
		if !ok || pair[0] == nil {
			continue
		}
		if w, listed := want[key]; !listed || !slices.Equal(pair, w) {
			t.Errorf("model_index.json %s = %v, want %v", key, pair, w)
		}
		if st, err := os.Stat(filepath.Join(out, key)); err != nil || !st.IsDir() {
			t.Errorf("model_index.json lists %s, but the folder has no %s/", key, key)
		}
		delete(want, key)
	}
	if len(want) > 0 {
		t.Errorf("model_index.json lacks %v", want)
	}
}

// TestExportCheckpoint turns checkpoint 2 of a 4-step run into a pipeline
// folder (full) and LoRA files (lora): the folder loads as a pipeline whose
// unet/ holds the checkpoint's student exactly, and the LoRA file holds the
// checkpoint's adapters at their scale.
func TestExportCheckpoint(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "full")
	runTiny(t, root, out, 4, nil)
	ck := filepath.Join(out, checkpointsDir, "step-00000002")
	res, err := ExportCheckpoint(ck, "", quiet())
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(out, "exports", "step-00000002")
	if res.OutputDir != dst || res.Steps != 2 {
		t.Errorf("exported to %s at step %d, want %s at 2", res.OutputDir, res.Steps, dst)
	}
	p, err := pipeline.Load(dst, "", "", "")
	if err != nil {
		t.Fatalf("the exported checkpoint does not load as a pipeline: %v", err)
	}
	want, _, err := loadCheckpoint(ck, []string{"student"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want["student"].Names() {
		w, _, _ := want["student"].Float32(name)
		g, _, err := p.UNet.Weights.Float32(name)
		if err != nil || maxDiff(g, w) != 0 {
			t.Fatalf("exported unet %s differs from the checkpoint's student (%v)", name, err)
		}
	}
	if _, err := ExportCheckpoint(ck, "", quiet()); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("export into a used folder: %v, want a refusal", err)
	}
	if _, err := ExportCheckpoint(out, filepath.Join(root, "x"), quiet()); err == nil || !strings.Contains(err.Error(), "not a checkpoint folder") {
		t.Errorf("export of a run folder: %v, want 'not a checkpoint folder'", err)
	}

	loraOut := filepath.Join(root, "lora")
	runTiny(t, root, loraOut, 2, func(s *spec.Spec) { s.Distill.Mode, s.LoRA.Rank, s.LoRA.Alpha = "lora", 4, 8 })
	ck = filepath.Join(loraOut, checkpointsDir, "step-00000002")
	res, err = ExportCheckpoint(ck, filepath.Join(root, "lora-export"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	got, err := lora.Read(res.Exported[0], p.UNet.Config.ParamShapes())
	if err != nil {
		t.Fatal(err)
	}
	want, _, err = loadCheckpoint(ck, []string{"student"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range got.Modules {
		a, _, _ := want["student"].Float32(lora.ParamA(m.Name))
		b, _, _ := want["student"].Float32(lora.ParamB(m.Name))
		ga, _, _ := got.Weights.Float32(lora.ParamA(m.Name))
		gb, _, _ := got.Weights.Float32(lora.ParamB(m.Name))
		for i := range b {
			b[i] *= 2 // alpha/rank, folded into the diffusers file's B
			gb[i] *= float32(m.Scale())
		}
		if maxDiff(ga, a) != 0 || maxDiff(gb, b) != 0 {
			t.Fatalf("exported LoRA module %s differs from the checkpoint", m.Name)
		}
	}
}

// TestLoRAFormatsAreTheFileFormats: the names the spec accepts in
// lora.formats are exactly the formats the export writes (lora.ParseFormat),
// each to its own file.
func TestLoRAFormatsAreTheFileFormats(t *testing.T) {
	var names []string
	files := map[string]bool{}
	for _, f := range []lora.Format{lora.FormatDiffusers, lora.FormatKohya, lora.FormatDiffusersOld} {
		names = append(names, f.String())
		files[lora.FileNameFor(f)] = true
	}
	if !slices.Equal(spec.LoRAFormats, names) || len(files) != len(names) {
		t.Fatalf("spec.LoRAFormats = %q, lora's formats %q writing %d distinct files", spec.LoRAFormats, names, len(files))
	}
	for _, name := range spec.LoRAFormats {
		f, err := lora.ParseFormat(name)
		if err != nil || f.String() != name {
			t.Errorf("lora.ParseFormat(%q) = %v, %v", name, f, err)
		}
	}
}
