package runner

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocumentedPathsAreWritten: every output_dir/... path the spec's
// comments name (<step> standing for a step number) exists after a run, and
// checkpoint_every = 0 leaves exactly the final checkpoint, as documented
// (with a small run.eval_every evaluation, for its folder).
func TestDocumentedPathsAreWritten(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "spec", "spec.go"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile(`output_dir/([\w./<>-]+)`).FindAllStringSubmatch(string(src), -1) {
		documented = append(documented, strings.TrimRight(m[1], "."))
	}
	if len(documented) < 2 {
		t.Fatalf("spec.go names %d output_dir paths, want the checkpoint and metrics paths", len(documented))
	}
	root := t.TempDir()
	s := tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "run"))
	s.Optim.MaxTrainSteps, s.Run.CheckpointEvery = 2, 0
	// A small evaluation, for output_dir/eval/step-<step>/.
	s.Run.EvalEvery, s.Eval.ReferenceSteps, s.Eval.StudentSteps, s.Eval.Prompts = 2, 2, []int{1}, []string{"a cat"}
	if _, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true}); err != nil {
		t.Fatal(err)
	}
	for _, p := range documented {
		glob := filepath.Join(s.Run.OutputDir, strings.ReplaceAll(p, "<step>", "*"))
		if found, _ := filepath.Glob(glob); len(found) == 0 {
			t.Errorf("spec.go documents output_dir/%s, the run wrote no %s", p, glob)
		}
	}
	found, _ := filepath.Glob(filepath.Join(s.Run.OutputDir, checkpointsDir, "step-*"))
	if len(found) != 1 || filepath.Base(found[0]) != checkpointName(2) {
		t.Errorf("checkpoint_every = 0: checkpoints %v, want only the final %s", found, checkpointName(2))
	}
}
