package runner

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/models/nn"
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
	teacher := filepath.Join(root, "teacher")
	whole, err := Run(context.Background(), tinySpec(t, teacher, filepath.Join(root, "whole")), Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Losses) != 6 {
		t.Fatalf("uninterrupted run took %d steps, want 6", len(whole.Losses))
	}
	out := filepath.Join(root, "killed")
	s := tinySpec(t, teacher, out)
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
	_ = nn.Options{}
}
