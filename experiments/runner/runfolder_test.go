package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/safetensors"
)

func quiet() Options { return Options{Log: io.Discard, NoProgress: true} }

// runTiny runs the tiny experiment for steps steps into out.
func runTiny(t *testing.T, root, out string, steps int, mutate func(*spec.Spec)) *Result {
	t.Helper()
	s := tinySpec(t, filepath.Join(root, "teacher"), out)
	s.Optim.MaxTrainSteps = steps
	if mutate != nil {
		mutate(&s)
	}
	res, err := Run(context.Background(), s, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestFreshRunRefusesAnotherRunsFolder: a fresh run into a folder that holds
// another run's checkpoints and exports is refused, says how to resume or
// start over, and leaves the old config.toml and metrics.jsonl as they were;
// with run.overwrite it starts over and the folder holds only the new run.
func TestFreshRunRefusesAnotherRunsFolder(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "a")
	runTiny(t, root, out, 4, nil)
	config, _ := os.ReadFile(filepath.Join(out, spec.ConfigFile))
	metrics, _ := os.ReadFile(filepath.Join(out, MetricsFile))

	s := tinySpec(t, filepath.Join(root, "teacher"), out)
	s.Optim.LR = 2e-3
	_, err := Run(context.Background(), s, quiet())
	if err == nil || !strings.Contains(err.Error(), "holds another run") ||
		!strings.Contains(err.Error(), "run.resume=latest") || !strings.Contains(err.Error(), "run.overwrite=true") {
		t.Fatalf("fresh run into a used folder: %v, want a refusal naming run.resume and run.overwrite", err)
	}
	t.Log(err)
	if got, _ := os.ReadFile(filepath.Join(out, spec.ConfigFile)); !bytes.Equal(got, config) {
		t.Errorf("the refused run replaced config.toml")
	}
	if got, _ := os.ReadFile(filepath.Join(out, MetricsFile)); !bytes.Equal(got, metrics) || len(metrics) == 0 {
		t.Errorf("the refused run changed metrics.jsonl (%d bytes, was %d)", len(got), len(metrics))
	}

	// Resuming another folder's checkpoint here (to fine-tune from it) is
	// a new run in this folder: refused the same way.
	other := filepath.Join(root, "b")
	runTiny(t, root, other, 2, nil)
	s.Run.Resume = filepath.Join(other, checkpointsDir, "step-00000002")
	s.Optim.LR = 1e-3
	if _, err := Run(context.Background(), s, quiet()); err == nil || !strings.Contains(err.Error(), "holds another run") {
		t.Errorf("resuming another folder's checkpoint into a used folder: %v, want a refusal", err)
	}
	s.Run.Resume, s.Optim.LR = "", 2e-3

	s.Run.Overwrite, s.Optim.MaxTrainSteps = true, 2
	if _, err := Run(context.Background(), s, quiet()); err != nil {
		t.Fatal(err)
	}
	all, _ := listCheckpoints(out)
	if len(all) != 1 || filepath.Base(all[0]) != "step-00000002" {
		t.Errorf("after run.overwrite the checkpoints are %v, want only the new run's step-00000002", all)
	}
	got, _ := os.ReadFile(filepath.Join(out, MetricsFile))
	if n := strings.Count(string(got), "\n"); n != 2 {
		t.Errorf("after run.overwrite metrics.jsonl has %d lines, want the new run's 2", n)
	}
}

// TestResumeRefusesChangedExperiment: resuming with another learning rate
// or seed is refused with both values of each key; listing the key in
// run.allow_changes lets it through, and a longer max_train_steps needs no
// permission.
func TestResumeRefusesChangedExperiment(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "a")
	runTiny(t, root, out, 2, nil)
	s := tinySpec(t, filepath.Join(root, "teacher"), out)
	s.Run.Resume, s.Optim.MaxTrainSteps = "latest", 4
	s.Optim.LR, s.Run.Seed = 5e-4, 8
	_, err := Run(context.Background(), s, quiet())
	if err == nil || !strings.Contains(err.Error(), "optim.lr: 0.001 in the checkpoint, 0.0005 now") ||
		!strings.Contains(err.Error(), "run.seed: 7 in the checkpoint, 8 now") || strings.Contains(err.Error(), "max_train_steps") {
		t.Fatalf("resume with a changed lr and seed: %v, want both keys with both values (and not max_train_steps)", err)
	}
	t.Log(err)
	s.Run.Seed = 7 // a seed change would also change the data order the checkpoint holds
	s.Run.AllowChanges = []string{"optim.lr"}
	res, err := Run(context.Background(), s, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Losses) != 2 {
		t.Errorf("allowed resume ran %d steps, want 2 (3 and 4)", len(res.Losses))
	}
}

// TestNonFiniteWeightsAreNeverSaved: with lr 1e39 the first step's loss is
// finite but the update makes the weights infinite; the checkpoint after it
// is refused (no checkpoint, no temporary folder), naming the last good one.
func TestNonFiniteWeightsAreNeverSaved(t *testing.T) {
	root := t.TempDir()
	s := tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "inf"))
	s.Optim.LR, s.Optim.MaxGradNorm, s.Run.CheckpointEvery = 1e39, 0, 1
	res, err := Run(context.Background(), s, quiet())
	if err == nil || !strings.Contains(err.Error(), "not finite") || !strings.Contains(err.Error(), "last good checkpoint is none") {
		t.Fatalf("err = %v, want a refusal to checkpoint non-finite weights", err)
	}
	t.Logf("losses %v: %v", res.Losses, err)
	entries, _ := os.ReadDir(filepath.Join(s.Run.OutputDir, checkpointsDir))
	for _, e := range entries {
		t.Errorf("checkpoints/ holds %s", e.Name())
	}
}

// TestCorruptLatestCheckpointFallsBack damages the newest checkpoint three
// ways (truncated weights, empty state.json, missing adam_v): resume=latest
// skips it, says which and why, and continues from the one before.
func TestCorruptLatestCheckpointFallsBack(t *testing.T) {
	root := t.TempDir()
	for name, damage := range map[string]func(dir string) error{
		"truncated weights": func(dir string) error {
			return os.Truncate(filepath.Join(dir, "student.safetensors"), 1000)
		},
		"empty state.json": func(dir string) error { return os.WriteFile(filepath.Join(dir, "state.json"), nil, 0o644) },
		"missing adam_v":   func(dir string) error { return os.Remove(filepath.Join(dir, "adam_v.safetensors")) },
	} {
		out := filepath.Join(root, strings.ReplaceAll(name, " ", "-"))
		runTiny(t, root, out, 4, nil)
		if err := damage(filepath.Join(out, checkpointsDir, "step-00000004")); err != nil {
			t.Fatal(err)
		}
		s := tinySpec(t, filepath.Join(root, "teacher"), out)
		s.Run.Resume = "latest"
		var log bytes.Buffer
		res, err := Run(context.Background(), s, Options{Log: &log, NoProgress: true})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(log.String(), "skipping checkpoint "+filepath.Join(out, checkpointsDir, "step-00000004")) ||
			!strings.Contains(log.String(), "step-00000002 at step 2") {
			t.Errorf("%s: log does not say the step-4 checkpoint was skipped and step 2 resumed:\n%s", name, log.String())
		}
		if len(res.Losses) != 4 {
			t.Errorf("%s: resumed run took %d steps, want 4 (3..6)", name, len(res.Losses))
		}
	}
}

// TestFailedSaveRemovesItsTemporaryFolder: a checkpoint whose weights fail
// to write leaves neither the checkpoint nor its .tmp- folder.
func TestFailedSaveRemovesItsTemporaryFolder(t *testing.T) {
	out := t.TempDir()
	defer func(w func(string, *nn.Weights, safetensors.DType) error) { writeWeights = w }(writeWeights)
	writeWeights = func(string, *nn.Weights, safetensors.DType) error { return errors.New("disk full") }
	w := nn.NewWeights()
	w.SetFloat32("x", []float32{1, 2}, 2)
	_, err := saveCheckpoint(out, 3, map[string]*nn.Weights{"student": w}, State{Step: 3}, spec.Default())
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want the write error", err)
	}
	entries, _ := os.ReadDir(filepath.Join(out, checkpointsDir))
	for _, e := range entries {
		t.Errorf("a failed save left %s", e.Name())
	}
}

// TestResumeRunsOwedValidation: a run killed after checkpoint 2 but before
// validation 2 gets that grid from the resumed run.
func TestResumeRunsOwedValidation(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "v")
	s := tinySpec(t, filepath.Join(root, "teacher"), out)
	s.Optim.MaxTrainSteps = 3
	s.Run.ValidationEvery, s.Run.ValidationInferenceSteps, s.Run.ValidationPrompts = 2, []int{1}, []string{"a cat"}
	_, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true, StopAfter: 2})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("killed run: %v", err)
	}
	for _, m := range []string{"student", "target"} {
		if err := os.Remove(validationGrid(out, m, 2)); err != nil {
			t.Fatal(err) // as if killed between checkpoint 2 and validation 2
		}
	}
	s.Run.Resume = "latest"
	if _, err := Run(context.Background(), s, quiet()); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"student", "target"} {
		if _, err := os.Stat(validationGrid(out, m, 2)); err != nil {
			t.Errorf("the resumed run did not make the owed validation: %v", err)
		}
	}
}

// TestResumeRunsOwedEvaluation: a run killed after checkpoint 2 but before
// evaluation 2 gets that evaluation, its report and its metrics line, from
// the resumed run, which evaluates its last step too.
func TestResumeRunsOwedEvaluation(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "e")
	s := tinySpec(t, filepath.Join(root, "teacher"), out)
	s.Optim.MaxTrainSteps = 3
	s.Run.EvalEvery, s.Eval.ReferenceSteps, s.Eval.StudentSteps, s.Eval.Prompts = 2, 2, []int{1}, []string{"a cat"}
	_, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true, StopAfter: 2})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("killed run: %v", err)
	}
	// As if killed between checkpoint 2 and evaluation 2: no report, no line.
	report := filepath.Join(evalDir(out, 2), "eval.json")
	if err := os.Remove(report); err != nil {
		t.Fatal(err)
	}
	metrics := filepath.Join(out, MetricsFile)
	data, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.Contains(line, `"eval/`) {
			kept = append(kept, line)
		}
	}
	if len(kept) == len(strings.Split(strings.TrimSpace(string(data)), "\n")) {
		t.Fatal("the killed run logged no evaluation line at step 2")
	}
	if err := os.WriteFile(metrics, []byte(strings.Join(kept, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Run.Resume = "latest"
	if _, err := Run(context.Background(), s, quiet()); err != nil {
		t.Fatal(err)
	}
	for _, step := range []int{2, 3} {
		if _, err := os.Stat(filepath.Join(evalDir(out, step), "eval.json")); err != nil {
			t.Errorf("step %d: no evaluation report: %v", step, err)
		}
	}
	data, _ = os.ReadFile(metrics)
	evalSteps := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, `"eval/student/lcm/1/latent_rmse"`) {
			evalSteps++
		}
	}
	if evalSteps != 2 {
		t.Errorf("metrics.jsonl has %d evaluation lines, want 2 (the owed step 2 and the last, 3):\n%s", evalSteps, data)
	}
}

// TestCheckpointsKeep: run.checkpoints_keep = 2 with a checkpoint every step
// leaves the newest two.
func TestCheckpointsKeep(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "keep")
	runTiny(t, root, out, 4, func(s *spec.Spec) { s.Run.CheckpointEvery, s.Run.CheckpointsKeep = 1, 2 })
	all, err := listCheckpoints(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range all {
		names = append(names, filepath.Base(c))
	}
	if strings.Join(names, ",") != "step-00000003,step-00000004" {
		t.Errorf("checkpoints %v, want step-00000003 and step-00000004", names)
	}
}

// TestCheckFiniteNamesTheBadTensor: the host scan behind every checkpoint
// and export (weights that may not come from a step of this process) finds
// one NaN or infinity and names its group, tensor and index.
func TestCheckFiniteNamesTheBadTensor(t *testing.T) {
	good := nn.NewWeights()
	good.SetFloat32("a", []float32{1, -2, 3}, 3)
	if err := checkFinite(map[string]*nn.Weights{"student": good}); err != nil {
		t.Fatalf("finite weights refused: %v", err)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		w := nn.NewWeights()
		w.SetFloat32("a", []float32{1, 2}, 2)
		w.SetFloat32("b", []float32{0, 0, bad}, 3)
		err := checkFinite(map[string]*nn.Weights{"student": good, "target": w})
		if err == nil || !strings.Contains(err.Error(), "target weights are not finite (b[2]") {
			t.Errorf("%v: err = %v, want it to name target b[2]", bad, err)
		}
	}
}

// TestResumeFromANonCheckpointIsRefused: run.resume naming a folder
// without state.json is refused before anything runs, naming the key.
func TestResumeFromANonCheckpointIsRefused(t *testing.T) {
	root := t.TempDir()
	r := &run{spec: tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "out")), log: io.Discard}
	r.spec.Run.Resume = root
	_, err := r.claimRunFolder()
	if err == nil || !strings.Contains(err.Error(), "run.resume") || !strings.Contains(err.Error(), "not a checkpoint folder") {
		t.Errorf("resume from %s: %v, want run.resume: not a checkpoint folder", root, err)
	}
}
