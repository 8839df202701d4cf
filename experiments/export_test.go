package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExportCheckpointThenSample: a checkpoint exported with
// `export -checkpoint` is a model `sample -model` takes.
func TestExportCheckpointThenSample(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := runTrain([]string{"-no-progress", "-set", "model.path=" + filepath.Join(dir, "teacher"), "-set", "model.init_tiny=true",
		"-set", "data.generate=4", "-set", "data.resolution=64", "-set", "data.batch_size=2", "-set", "data.workers=1",
		"-set", "optim.max_train_steps=2", "-set", "run.checkpoint_every=1", "-set", "run.validation_every=0",
		"-set", "run.output_dir=" + run}); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "step1")
	if err := runExport([]string{"-checkpoint", filepath.Join(run, "checkpoints", "step-00000001"), "-out", model}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "x.png")
	if err := runSample([]string{"-model", model, "-prompt", "a cat", "-steps", "1", "-out", out}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
