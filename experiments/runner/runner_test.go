package runner

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/unet"
)

// tinySpec is a few-step full distillation of golcm's tiny random teacher
// on generated images, small enough for CI.
func tinySpec(t *testing.T, teacherDir, out string) spec.Spec {
	t.Helper()
	s, err := spec.Load("", []string{
		"model.path=" + teacherDir, "model.init_tiny=true",
		"data.generate=8", "data.resolution=64", "data.batch_size=2", "data.workers=1",
		"optim.max_train_steps=6", "optim.weight_decay=0", "optim.lr=1e-3",
		"run.output_dir=" + out, "run.checkpoint_every=2", "run.validation_every=0", "run.log_every=1",
		"run.seed=7",
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestResumeKeepsDataOrder kills a run after a checkpoint and resumes it:
// the resumed steps' losses equal the uninterrupted run's, so the data
// order, the random draws, the weights and the optimizer state all came back.
func TestResumeKeepsDataOrder(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "killed")
	resumed := checkResumeMatches(t, root, out, func(*spec.Spec) {})

	// The export loads back into the UNet and holds the final student.
	m, err := unet.Load(filepath.Join(out, "unet"), "")
	if err != nil {
		t.Fatal(err)
	}
	ck, _, err := loadCheckpoint(resumed.Checkpoint, []string{"student"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ck["student"].Names() {
		want, _, _ := ck["student"].Float32(name)
		got, _, err := m.Weights.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("exported %s[%d] = %v, checkpoint %v", name, i, got[i], want[i])
			}
		}
	}
	for _, f := range []string{"metrics.jsonl", "config.toml", "model_index.json", "unet_target/config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing artifact: %v", err)
		}
	}
}

// checkResumeMatches runs the tiny experiment (changed by mutate) once
// without a stop and once killed after step 3 and resumed into out: the
// resumed run recomputes steps 3..6 with the uninterrupted run's losses.
func checkResumeMatches(t *testing.T, root, out string, mutate func(*spec.Spec)) *Result {
	t.Helper()
	teacher := filepath.Join(root, "teacher")
	ws := tinySpec(t, teacher, filepath.Join(root, "whole"))
	mutate(&ws)
	whole, err := Run(context.Background(), ws, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Losses) != 6 {
		t.Fatalf("uninterrupted run took %d steps, want 6", len(whole.Losses))
	}
	s := tinySpec(t, teacher, out)
	mutate(&s)
	_, err = Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true, StopAfter: 3})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("killed run: %v, want ErrInterrupted", err)
	}
	s.Run.Resume = "latest"
	resumed, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	// The kill came after step 3; the last checkpoint was step 2, so the
	// resumed run recomputes steps 3..6.
	if len(resumed.Losses) != 4 {
		t.Fatalf("resumed run took %d steps, want 4", len(resumed.Losses))
	}
	for i, loss := range resumed.Losses {
		if want := whole.Losses[2+i]; loss != want {
			t.Errorf("step %d: resumed loss %v, uninterrupted %v", 3+i, loss, want)
		}
	}
	t.Logf("uninterrupted losses %v; resumed %v", whole.Losses, resumed.Losses)
	return resumed
}

// TestLoRADropoutRunResumes: LoRA dropout draws its masks from the run's
// seed, so a killed and resumed run repeats the uninterrupted one's losses,
// and the masks do act (the losses differ from a run without dropout).
func TestLoRADropoutRunResumes(t *testing.T) {
	root := t.TempDir()
	lora := func(dropout float64) func(*spec.Spec) {
		return func(s *spec.Spec) {
			s.Distill.Mode, s.LoRA.Rank, s.LoRA.Alpha, s.LoRA.Dropout = "lora", 4, 8, dropout
		}
	}
	resumed := checkResumeMatches(t, root, filepath.Join(root, "killed"), lora(0.3))
	s := tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "nodropout"))
	lora(0)(&s)
	plain, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	if last := len(plain.Losses) - 1; plain.Losses[last] == resumed.Losses[len(resumed.Losses)-1] {
		t.Errorf("final loss %v with and without lora.dropout: the masks do nothing", plain.Losses[last])
	}
}

// TestLoRARunExportsAdapters distills the tiny teacher into a LoRA and
// checks the exported file reads back as the trained adapters.
func TestLoRARunExportsAdapters(t *testing.T) {
	root := t.TempDir()
	s := tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "lora"))
	s.Distill.Mode = "lora"
	s.LoRA.Rank, s.LoRA.Alpha = 4, 8
	s.LoRA.Formats = []string{"diffusers", "kohya"}
	s.Optim.MaxTrainSteps = 2
	res, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.Run.OutputDir, lora.FileName)
	kohya := filepath.Join(s.Run.OutputDir, lora.FileNameFor(lora.FormatKohya))
	if len(res.Exported) != 2 || res.Exported[0] != path || res.Exported[1] != kohya {
		t.Fatalf("exported %v, want %s and %s", res.Exported, path, kohya)
	}
	teacher, err := unet.Load(filepath.Join(s.Model.Path, "unet"), "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := lora.Read(path, teacher.Config.ParamShapes())
	if err != nil {
		t.Fatal(err)
	}
	ck, _, err := loadCheckpoint(res.Checkpoint, []string{"student"})
	if err != nil {
		t.Fatal(err)
	}
	// The kohya file keeps the checkpoint's A and B and alpha = 8.
	k, err := lora.Read(kohya, teacher.Config.ParamShapes())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range k.Modules {
		if m.Scale() != 2 {
			t.Fatalf("kohya file: module %s has scale %v, want alpha/rank = 2", m.Name, m.Scale())
		}
	}
	for _, name := range ck["student"].Names() {
		want, _, _ := ck["student"].Float32(name)
		have, _, err := k.Weights.Float32(name)
		if err != nil || maxDiff(have, want) != 0 {
			t.Fatalf("kohya file: %s differs from the checkpoint (%v)", name, err)
		}
	}
	if got.Weights.Len() != ck["student"].Len() {
		t.Fatalf("file has %d adapter tensors, checkpoint %d", got.Weights.Len(), ck["student"].Len())
	}
	// The diffusers file folds alpha/rank = 2 into B (diffusers 0.26 reads
	// no alpha): A is the checkpoint's, scale·B is 2·B of the checkpoint.
	for _, m := range got.Modules {
		if m.Scale() != 1 {
			t.Fatalf("module %s has scale %v after reload, want 1 (alpha folded into B)", m.Name, m.Scale())
		}
		for _, name := range []string{lora.ParamA(m.Name), lora.ParamB(m.Name)} {
			want, _, _ := ck["student"].Float32(name)
			have, _, err := got.Weights.Float32(name)
			if err != nil {
				t.Fatal(err)
			}
			if name == lora.ParamB(m.Name) {
				for i := range want {
					want[i] *= 2
				}
			}
			if maxDiff(have, want) != 0 {
				t.Fatalf("%s differs between the export and the checkpoint", name)
			}
		}
	}
}

func maxDiff(a, b []float32) float32 {
	var m float32
	for i := range a {
		d := a[i] - b[i]
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

// TestNonFiniteLossStops: a diverging run stops with a clear message and
// keeps its last good checkpoint.
func TestNonFiniteLossStops(t *testing.T) {
	root := t.TempDir()
	s := tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "nan"))
	s.Optim.LR, s.Optim.MaxGradNorm, s.Run.CheckpointEvery = 1e30, 0, 1
	_, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err == nil || !strings.Contains(err.Error(), "last good checkpoint is") {
		t.Fatalf("err = %v, want a non-finite loss error naming the last checkpoint", err)
	}
	t.Log(err)
}

// TestSDXLRunsOnFixtureTeacher distills the fixture's tiny SDXL pipeline
// for two steps in each mode: the SDXL path (two text encoders, pooled
// embeddings, time ids, zero unconditional embeddings) runs end to end.
func TestSDXLRunsOnFixtureTeacher(t *testing.T) {
	dir := filepath.Join(golden.Dir(), "tiny-sdxl")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("fixture pipeline %s not found (set %s): %v", dir, golden.EnvDir, err)
	}
	for _, mode := range []string{"full", "lora"} {
		root := t.TempDir()
		s := tinySpec(t, dir, filepath.Join(root, mode))
		s.Model.InitTiny = false
		s.Distill.Mode, s.Distill.WMin = mode, 3
		s.LoRA.Rank, s.LoRA.Alpha = 2, 2
		s.Optim.MaxTrainSteps = 2
		s.Run.ValidationEvery, s.Run.ValidationInferenceSteps = 2, []int{1}
		s.Run.ValidationPrompts = []string{"a cat"}
		res, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		t.Logf("%s: losses %v, exported %v", mode, res.Losses, res.Exported)
		if mode == "full" {
			checkModelIndex(t, s.Run.OutputDir, "StableDiffusionXLPipeline", map[string][]any{
				"unet": {"diffusers", "UNet2DConditionModel"}, "scheduler": {"diffusers", "LCMScheduler"},
				"vae": {"diffusers", "AutoencoderKL"}, "text_encoder": {"transformers", "CLIPTextModel"},
				"tokenizer": {"transformers", "CLIPTokenizer"}, "text_encoder_2": {"transformers", "CLIPTextModelWithProjection"},
				"tokenizer_2": {"transformers", "CLIPTokenizer"},
			})
		}
		if _, err := os.Stat(filepath.Join(s.Run.OutputDir, "validation")); err != nil {
			t.Errorf("%s: no validation grid: %v", mode, err)
		}
	}
}

// TestInterruptCheckpointsAndResumes: ending the context (what Ctrl-C and
// SIGTERM do) checkpoints the current step; resuming finishes the run with
// the losses of an uninterrupted one.
func TestInterruptCheckpointsAndResumes(t *testing.T) {
	root := t.TempDir()
	teacher := filepath.Join(root, "teacher")
	s := tinySpec(t, teacher, filepath.Join(root, "whole"))
	s.Optim.MaxTrainSteps, s.Run.CheckpointEvery = 4, 0
	whole, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Run.OutputDir = filepath.Join(root, "interrupted")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = Run(ctx, s, Options{Log: io.Discard, NoProgress: true, OnStep: func(step int, _ *lcm.StepResult) {
		if step == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "step-00000003") {
		t.Fatalf("err = %v, want an interruption with a checkpoint at step 3", err)
	}
	s.Run.Resume = "latest"
	resumed, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(resumed.Losses) != 1 || resumed.Losses[0] != whole.Losses[3] {
		t.Fatalf("resumed losses %v, want [%v] (step 4 of the uninterrupted run)", resumed.Losses, whole.Losses[3])
	}
}

// TestGradientAccumulationRun: with two micro-batches per step, a run of 2
// optimizer steps reads 4 batches and logs 2 steps.
func TestGradientAccumulationRun(t *testing.T) {
	root := t.TempDir()
	s := tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "acc"))
	s.Optim.MaxTrainSteps, s.Optim.GradientAccumulationSteps = 2, 2
	res, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps != 2 || len(res.Losses) != 2 {
		t.Fatalf("steps %d, losses %v; want 2 optimizer steps", res.Steps, res.Losses)
	}
	data, err := os.ReadFile(filepath.Join(s.Run.OutputDir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], `"data/delivered":8`) {
		t.Fatalf("metrics:\n%s\nwant 2 lines, the last after 8 samples (4 batches of 2)", data)
	}
}
