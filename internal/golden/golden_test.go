package golden

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golcm/golcm/models/safetensors"
)

// recorder is a testing.TB that records Errorf/Fatalf/Logf/Skipf instead of acting on them, so the
// failure paths of the checks can be observed. Fatalf and Skipf do not stop the caller; the package
// returns after calling them, which these tests rely on.
type recorder struct {
	testing.TB
	errors, fatals, logs, skips []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, a ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, a...))
}
func (r *recorder) Fatalf(format string, a ...any) {
	r.fatals = append(r.fatals, fmt.Sprintf(format, a...))
}
func (r *recorder) Logf(format string, a ...any) { r.logs = append(r.logs, fmt.Sprintf(format, a...)) }
func (r *recorder) Skipf(format string, a ...any) {
	r.skips = append(r.skips, fmt.Sprintf(format, a...))
}

// fakeFixtures writes a one-sidecar fixture folder and points GOLCM_GOLDEN_DIR at it.
func fakeFixtures(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv(EnvDir, dir)
	tensors := []*safetensors.Tensor{
		safetensors.FromFloat32("out.x", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		safetensors.FromFloat32("out.rel", []int{2}, []float32{100, -200}),
		safetensors.FromFloat32("out.loss", []int{1}, []float32{0.5}),
		safetensors.FromInt64("tok.ids", []int{3}, []int64{49406, 320, 49407}),
		safetensors.FromFloat32("in.noise", []int{2}, []float32{0.1, 0.2}),
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "fake-golden.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	sidecar := `{
 "file": "fake-golden.safetensors",
 "model_dir": "fake-model",
 "prompts": ["", "a cat"],
 "pipe_call": {"num_inference_steps": 4},
 "entries": {
  "out.x": {"dtype": "F32", "shape": [2, 3], "desc": "x", "tol": {"atol": 0.01, "observed_fp32_vs_fp64_maxabs": 1e-3}},
  "out.rel": {"dtype": "F32", "shape": [2], "desc": "rel", "tol": {"rtol": 0.001, "atol": 1e-7}},
  "out.loss": {"dtype": "F32", "shape": [1], "desc": "scalar", "tol": {"atol": 1e-5, "basis": "estimate"}},
  "tok.ids": {"dtype": "I64", "shape": [3], "desc": "ids", "tol": "exact"},
  "in.noise": {"dtype": "F32", "shape": [2], "desc": "an input", "tol": null}
 }
}`
	if err := os.WriteFile(filepath.Join(dir, "fake-golden.json"), []byte(sidecar), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSidecarsParseFakeFixture(t *testing.T) {
	dir := fakeFixtures(t)
	if Dir() != dir {
		t.Fatalf("Dir() = %s, want %s", Dir(), dir)
	}
	all := Sidecars(t)
	if len(all) != 1 {
		t.Fatalf("%d sidecars", len(all))
	}
	s := all[0]
	if s.Name != "fake-golden" || s.ModelDir != filepath.Join(dir, "fake-model") || s.TeacherDir != "" {
		t.Errorf("sidecar %s model %q teacher %q", s.Name, s.ModelDir, s.TeacherDir)
	}
	if !slices.Equal(s.Prompts, []string{"", "a cat"}) || string(s.Raw["pipe_call"]) != `{"num_inference_steps": 4}` {
		t.Errorf("prompts %q pipe_call %s", s.Prompts, s.Raw["pipe_call"])
	}
	if !s.Has("out.x") || s.Has("out.y") || !slices.Equal(s.EntryNames("out."), []string{"out.loss", "out.rel", "out.x"}) {
		t.Errorf("entries %v", s.EntryNames(""))
	}
	tols := map[string]string{"out.x": "atol=0.01", "out.rel": "atol=1e-07,rtol=0.001", "tok.ids": "exact", "in.noise": "atol=0", "out.loss": "atol=1e-05"}
	for name, want := range tols {
		if got := s.Entries[name].Tol.String(); got != want {
			t.Errorf("%s tol %s, want %s", name, got, want)
		}
	}
	if e := s.Entries["out.x"]; e.DType != "F32" || !slices.Equal(e.Shape, []int{2, 3}) || e.Desc != "x" {
		t.Errorf("out.x entry %+v", e)
	}
	v, shape := s.Float32(t, "out.x")
	if !slices.Equal(v, []float32{1, 2, 3, 4, 5, 6}) || !slices.Equal(shape, []int{2, 3}) {
		t.Errorf("out.x = %v %v", v, shape)
	}
	ids, _ := s.Int64(t, "tok.ids")
	if !slices.Equal(ids, []int64{49406, 320, 49407}) {
		t.Errorf("tok.ids = %v", ids)
	}
	if Load(t, "fake-golden") != s {
		t.Error("Load did not return the cached sidecar")
	}
}

func TestChecksPassWithinTolerance(t *testing.T) {
	fakeFixtures(t)
	s := Sidecars(t)[0]
	r := &recorder{TB: t}
	s.CheckFloat32(r, "out.x", []float32{1.005, 2, 3, 4, 5, 5.995}, []int{2, 3})
	s.CheckFloat32(r, "out.rel", []float32{100.09, -200.19}, []int{2})
	s.CheckFloat32(r, "out.loss", []float32{0.5}, nil) // [] matches the stored [1]
	s.CheckFloat32(r, "in.noise", []float32{0.1, 0.2}, []int{2})
	s.CheckInt64(r, "tok.ids", []int64{49406, 320, 49407}, []int{3})
	if len(r.errors)+len(r.fatals) != 0 {
		t.Errorf("unexpected failures: %q %q", r.errors, r.fatals)
	}
	if len(r.logs) != 5 {
		t.Fatalf("%d log lines, want one per check: %q", len(r.logs), r.logs)
	}
	if want := "golden fake-golden out.x max_abs_err=0.005 tol=atol=0.01"; r.logs[0] != want {
		t.Errorf("log %q, want %q", r.logs[0], want)
	}
	if want := "golden fake-golden tok.ids max_abs_err=0 tol=exact"; r.logs[4] != want {
		t.Errorf("log %q, want %q", r.logs[4], want)
	}
}

func TestChecksReportMismatches(t *testing.T) {
	fakeFixtures(t)
	s := Sidecars(t)[0]
	nan := float32(math.NaN())
	cases := []struct {
		name  string
		check func(r *recorder)
		want  string
	}{
		{"value", func(r *recorder) { s.CheckFloat32(r, "out.x", []float32{1, 2, 3, 4, 5.5, 6.02}, []int{2, 3}) }, "2 of 6 elements outside tol atol=0.01; worst at [1 1] (flat 4): got 5.5 want 5"},
		{"rtol", func(r *recorder) { s.CheckFloat32(r, "out.rel", []float32{100, -200.3}, []int{2}) }, "worst at [1]"},
		{"nan", func(r *recorder) { s.CheckFloat32(r, "out.x", []float32{1, 2, nan, 4, 5, 6}, []int{2, 3}) }, "worst at [0 2]"},
		{"input needs equality", func(r *recorder) { s.CheckFloat32(r, "in.noise", []float32{0.1, 0.2000001}, []int{2}) }, "1 of 2"},
		{"shape", func(r *recorder) { s.CheckFloat32(r, "out.x", []float32{1, 2, 3, 4, 5, 6}, []int{3, 2}) }, "shape [3 2], want [2 3]"},
		{"length", func(r *recorder) { s.CheckFloat32(r, "out.x", []float32{1, 2, 3}, []int{2, 3}) }, "3 values"},
		{"ints", func(r *recorder) { s.CheckInt64(r, "tok.ids", []int64{49406, 321, 49407}, []int{3}) }, "first at [1] (flat 1): got 321 want 320"},
	}
	for _, c := range cases {
		r := &recorder{TB: t}
		c.check(r)
		if len(r.errors) != 1 || !strings.Contains(r.errors[0], c.want) {
			t.Errorf("%s: errors %q, want one containing %q", c.name, r.errors, c.want)
		}
	}
	r := &recorder{TB: t}
	s.CheckFloat32(r, "out.x", []float32{1, 2, nan, 4, 5, 6}, []int{2, 3})
	if len(r.logs) != 1 || !strings.Contains(r.logs[0], "max_abs_err=NaN") {
		t.Errorf("NaN log %q", r.logs)
	}

	r = &recorder{TB: t}
	s.Float32(r, "no.such.entry")
	s.Int64(r, "out.x") // float entry read as integers
	if len(r.fatals) != 2 || !strings.Contains(r.fatals[0], `no entry "no.such.entry"`) || !strings.Contains(r.fatals[1], "not an integer dtype") {
		t.Errorf("fatals %q", r.fatals)
	}
}

func TestSidecarsSkipWhenFolderMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	t.Setenv(EnvDir, missing)
	r := &recorder{TB: t}
	if got := Sidecars(r); got != nil || len(r.skips) != 1 || !strings.Contains(r.skips[0], missing) || !strings.Contains(r.skips[0], EnvDir) {
		t.Errorf("got %v, skips %q", got, r.skips)
	}
}

func TestSidecarsFailOnBadJSON(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvDir, dir)
	os.WriteFile(filepath.Join(dir, "bad-golden.json"), []byte(`{"file": "x", "entries": {"a": {"tol": "loose"}}}`), 0o644)
	r := &recorder{TB: t}
	Sidecars(r)
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "bad-golden.json") || !strings.Contains(r.fatals[0], "loose") {
		t.Errorf("fatals %q", r.fatals)
	}
}

func TestRelativeDirIsFromRepoRoot(t *testing.T) {
	t.Setenv(EnvDir, "")
	root := RepoRoot()
	if root == "" {
		t.Fatal("no go.mod above the working directory")
	}
	if want := filepath.Join(filepath.Dir(root), "shared", "fixtures"); Dir() != want {
		t.Errorf("Dir() = %s, want %s", Dir(), want)
	}
	t.Setenv(EnvDir, "testdata/fx")
	if want := filepath.Join(root, "testdata", "fx"); Dir() != want {
		t.Errorf("Dir() = %s, want %s", Dir(), want)
	}
}

// TestRealFixturesLoad reads every real sidecar and checks each entry's stored shape and dtype
// against the sidecar, and that comparing an entry with itself passes.
func TestRealFixturesLoad(t *testing.T) {
	for _, s := range Sidecars(t) {
		f, err := s.File()
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Entries) == 0 || len(s.Entries) != len(f.Tensors) {
			t.Errorf("%s: %d entries in the sidecar, %d tensors in %s", s.Name, len(s.Entries), len(f.Tensors), f.Path)
		}
		for name, e := range s.Entries {
			tensor := f.Tensors[name]
			if tensor == nil {
				t.Errorf("%s: entry %s has no tensor", s.Name, name)
				continue
			}
			if string(tensor.DType) != e.DType || !slices.Equal(tensor.Shape, e.Shape) {
				t.Errorf("%s %s: stored %s %v, sidecar says %s %v", s.Name, name, tensor.DType, tensor.Shape, e.DType, e.Shape)
			}
		}
		if st, err := os.Stat(s.ModelDir); err != nil || !st.IsDir() {
			t.Errorf("%s: model_dir %q: %v", s.Name, s.ModelDir, err)
		}
		name := s.EntryNames("unet.sample")[0]
		v, shape := s.Float32(t, name)
		s.CheckFloat32(t, name, v, shape)
	}
}

// namedRecorder is a recorder with its own test name and cleanups, so that
// the end-of-test check can be run and observed.
type namedRecorder struct {
	recorder
	name     string
	cleanups []func()
}

func (r *namedRecorder) Name() string     { return r.name }
func (r *namedRecorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *namedRecorder) Failed() bool     { return len(r.errors)+len(r.fatals) > 0 }
func (r *namedRecorder) Skipped() bool    { return len(r.skips) > 0 }
func (r *namedRecorder) end() {
	for _, f := range r.cleanups {
		f()
	}
}

// TestMissingEntriesSkipByNameAndNothingCheckedFails: checking an entry the
// sidecar lacks logs it as skipped and is no failure; a golden test that
// compared no entry at all fails at its end; one that compared an entry, in
// a subtest, passes.
func TestMissingEntriesSkipByNameAndNothingCheckedFails(t *testing.T) {
	fakeFixtures(t)
	empty := &namedRecorder{recorder: recorder{TB: t}, name: t.Name() + "-empty"}
	s := Sidecars(empty)[0]
	s.CheckFloat32(empty, "pipe.prompt_embeds", []float32{1}, []int{1})
	s.CheckInt64(empty, "tok.input_ids_2", []int64{1}, []int{1})
	if len(empty.errors)+len(empty.fatals) != 0 {
		t.Fatalf("a missing entry failed the check: %q %q", empty.errors, empty.fatals)
	}
	if len(empty.logs) != 2 || !strings.Contains(empty.logs[0], "no entry pipe.prompt_embeds; its check is skipped") {
		t.Errorf("logs %q, want each missing entry named as skipped", empty.logs)
	}
	empty.end()
	if len(empty.errors) != 1 || !strings.Contains(empty.errors[0], "compared no fixture entry") {
		t.Errorf("a test that checked nothing: errors %q, want one saying it compared nothing", empty.errors)
	}

	parent := &namedRecorder{recorder: recorder{TB: t}, name: t.Name() + "-some"}
	Sidecars(parent)
	sub := &namedRecorder{recorder: recorder{TB: t}, name: parent.name + "/sub"}
	s.CheckFloat32(sub, "out.loss", []float32{0.5}, []int{1})
	parent.end()
	if len(parent.errors)+len(sub.errors) != 0 {
		t.Errorf("a test whose subtest checked an entry failed: %q %q", parent.errors, sub.errors)
	}
}
