// Package golden gives tests access to the golden fixtures: numbers produced by the upstream Python
// code (diffusers, transformers) that golcm must reproduce. See ../shared/fixtures/README.md.
//
// The fixture folder is $GOLCM_GOLDEN_DIR, or ../shared/fixtures next to the repository root (the
// folder holding go.mod); a relative $GOLCM_GOLDEN_DIR is taken relative to the repository root too,
// since tests run in package folders at different depths. Each "*-golden.json" sidecar describes the
// tensors in its safetensors file and their tolerances; Sidecars loads them and the Check methods
// compare a result against an entry, logging one line per check.
//
// It depends on models/safetensors and the standard library, and is meant for tests only.
package golden

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/safetensors"
)

// EnvDir names the environment variable that overrides the fixture folder.
const EnvDir = "GOLCM_GOLDEN_DIR"

// Dir is the fixture folder (absolute when the repository root can be found). It may not exist.
func Dir() string {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		dir = filepath.Join("..", "shared", "fixtures")
	}
	if filepath.IsAbs(dir) {
		return filepath.Clean(dir)
	}
	if root := RepoRoot(); root != "" {
		return filepath.Join(root, dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	return abs
}

// RepoRoot is the nearest folder at or above the working directory that holds go.mod, or "".
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !st.IsDir() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Sidecar is one "<name>.json" fixture description plus lazy access to its tensors.
type Sidecar struct {
	Name       string // file name without ".json", e.g. "tiny-sd-golden"
	Dir        string // the fixture folder
	ModelDir   string // absolute path of the model folder it was made from, or ""
	TeacherDir string // absolute path of the teacher model folder, or ""
	Prompts    []string
	Entries    map[string]Entry
	Raw        map[string]json.RawMessage // every top-level key, for sections such as "lcd" and "pipe_call"

	file     string // safetensors path
	loadOnce sync.Once
	loaded   *safetensors.File
	loadErr  error
}

// Entry describes one tensor of a sidecar.
type Entry struct {
	DType string
	Shape []int
	Desc  string
	Tol   Tol
}

// Tol is an entry's tolerance: Exact, or |got-want| <= Atol + Rtol*|want| elementwise. An entry with
// no tolerance in the sidecar (a fixed input) has the zero Tol, which only equal values pass.
type Tol struct {
	Exact      bool
	Atol, Rtol float64
	// TypicalAtol, when the sidecar gives one ("typical_atol"), is what nearly every element meets;
	// Atol is then the envelope for the few that may differ more (Adam's first step on elements
	// whose gradient is near zero).
	TypicalAtol float64
}

func (t Tol) String() string {
	switch {
	case t.Exact:
		return "exact"
	case t.Rtol == 0:
		return fmt.Sprintf("atol=%g", t.Atol)
	case t.Atol == 0:
		return fmt.Sprintf("rtol=%g", t.Rtol)
	}
	return fmt.Sprintf("atol=%g,rtol=%g", t.Atol, t.Rtol)
}

// UnmarshalJSON accepts "exact", null, or an object with atol and/or rtol (other keys, such as
// "basis" or "observed_fp32_vs_fp64_maxabs", are notes and ignored).
func (t *Tol) UnmarshalJSON(b []byte) error {
	*t = Tol{}
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s != "exact" {
			return fmt.Errorf("tolerance %q: want \"exact\" or an object with atol/rtol", s)
		}
		t.Exact = true
		return nil
	}
	var o struct {
		Atol        *float64 `json:"atol"`
		Rtol        *float64 `json:"rtol"`
		TypicalAtol float64  `json:"typical_atol"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("tolerance %s: %w", b, err)
	}
	if o.Atol == nil && o.Rtol == nil {
		return fmt.Errorf("tolerance %s: has neither atol nor rtol", b)
	}
	if o.Atol != nil {
		t.Atol = *o.Atol
	}
	if o.Rtol != nil {
		t.Rtol = *o.Rtol
	}
	t.TypicalAtol = o.TypicalAtol
	if t.Atol < 0 || t.Rtol < 0 || t.TypicalAtol < 0 {
		return fmt.Errorf("tolerance %s: negative", b)
	}
	return nil
}

// sidecarJSON is the part of a sidecar this package interprets.
type sidecarJSON struct {
	File       string   `json:"file"`
	ModelDir   string   `json:"model_dir"`
	TeacherDir string   `json:"teacher_dir"`
	Prompts    []string `json:"prompts"`
	Entries    map[string]struct {
		DType string `json:"dtype"`
		Shape []int  `json:"shape"`
		Desc  string `json:"desc"`
		Tol   Tol    `json:"tol"`
	} `json:"entries"`
}

// cache keeps parsed sidecars per fixture folder, so a test binary parses each once.
var cache = struct {
	sync.Mutex
	byDir map[string][]*Sidecar
}{byDir: map[string][]*Sidecar{}}

// Sidecars returns every "*-golden.json" in Dir(), sorted by name. It skips the test when the folder
// is missing and fails it when a sidecar cannot be parsed or there is none, or when the test (with
// its subtests) ends without having compared any entry: a golden test checks what the sidecars
// hold, and one that found nothing to check has not passed.
func Sidecars(t testing.TB) []*Sidecar {
	t.Helper()
	s := sidecars(t)
	if s != nil {
		mustCheck(t)
	}
	return s
}

// sidecars is Sidecars without the end-of-test check, for Load.
func sidecars(t testing.TB) []*Sidecar {
	t.Helper()
	dir := Dir()
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Skipf("golden fixtures not found at %s (set %s to the fixture folder)", dir, EnvDir)
		return nil
	}
	cache.Lock()
	defer cache.Unlock()
	if s, ok := cache.byDir[dir]; ok {
		return s
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*-golden.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("golden: no *-golden.json sidecar in %s (%s)", dir, EnvDir)
		return nil
	}
	sort.Strings(paths)
	var out []*Sidecar
	for _, p := range paths {
		s, err := parseSidecar(p)
		if err != nil {
			t.Fatalf("golden: %v", err)
			return nil
		}
		out = append(out, s)
	}
	cache.byDir[dir] = out
	return out
}

// checked counts, per test name, the fixture entries a test compared, so
// that a golden test whose sidecars hold none of its entries fails instead
// of passing on nothing.
var checked = struct {
	sync.Mutex
	n       map[string]int
	watched map[string]bool
}{n: map[string]int{}, watched: map[string]bool{}}

// Compared records a comparison with the fixtures made outside the Check
// functions (against a sidecar's JSON sections, such as pipe_call).
func Compared(t testing.TB) { noteChecked(t) }

// noteChecked records that t compared one fixture entry.
func noteChecked(t testing.TB) {
	checked.Lock()
	checked.n[t.Name()]++
	checked.Unlock()
}

// mustCheck makes t fail at its end (after its subtests) unless it or one
// of its subtests compared a fixture entry.
func mustCheck(t testing.TB) {
	name := t.Name()
	checked.Lock()
	defer checked.Unlock()
	if checked.watched[name] {
		return
	}
	checked.watched[name] = true
	t.Cleanup(func() {
		if t.Failed() || t.Skipped() {
			return
		}
		checked.Lock()
		n := 0
		for test, c := range checked.n {
			if test == name || strings.HasPrefix(test, name+"/") {
				n += c
			}
		}
		delete(checked.watched, name)
		checked.Unlock()
		if n == 0 {
			t.Errorf("golden: %s compared no fixture entry: the sidecars in %s hold none of the entries it checks", name, Dir())
		}
	})
}

// Load returns the sidecar with the given name (e.g. "tiny-sd-golden"), skipping the test when the
// fixture folder is missing and failing it when that sidecar is not there. Tests that take a
// fixture's inputs for their own comparisons use it.
func Load(t testing.TB, name string) *Sidecar {
	t.Helper()
	var names []string
	for _, s := range sidecars(t) {
		if s.Name == name {
			return s
		}
		names = append(names, s.Name)
	}
	t.Fatalf("golden: no sidecar %q in %s (have %s)", name, Dir(), strings.Join(names, ", "))
	return nil
}

func parseSidecar(path string) (*Sidecar, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var sj sidecarJSON
	if err := json.Unmarshal(b, &sj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if sj.File == "" {
		return nil, fmt.Errorf("%s: no \"file\" naming the safetensors file", path)
	}
	dir := filepath.Dir(path)
	s := &Sidecar{
		Name:    strings.TrimSuffix(filepath.Base(path), ".json"),
		Dir:     dir,
		Prompts: sj.Prompts,
		Entries: make(map[string]Entry, len(sj.Entries)),
		Raw:     raw,
		file:    resolve(dir, sj.File),
	}
	s.ModelDir = resolve(dir, sj.ModelDir)
	s.TeacherDir = resolve(dir, sj.TeacherDir)
	for name, e := range sj.Entries {
		s.Entries[name] = Entry{DType: e.DType, Shape: e.Shape, Desc: e.Desc, Tol: e.Tol}
	}
	return s, nil
}

// resolve makes p absolute relative to dir; "" stays "".
func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// noteReference counts a read of an entry with a tolerance as a comparison.
func (s *Sidecar) noteReference(t testing.TB, entry string) {
	if e, ok := s.Entries[entry]; ok && e.Tol != (Tol{}) {
		noteChecked(t)
	}
}

// Lacks reports whether the sidecar lacks entry, logging that the check of
// it is skipped: golden tests check every entry a sidecar has and skip, by
// name, those it lacks.
func (s *Sidecar) Lacks(t testing.TB, entry string) bool {
	t.Helper()
	if s.Has(entry) {
		return false
	}
	t.Logf("golden %s: no entry %s; its check is skipped", s.Name, entry)
	return true
}

// Has reports whether the sidecar has an entry with this name.
func (s *Sidecar) Has(entry string) bool {
	_, ok := s.Entries[entry]
	return ok
}

// EntryNames lists the entry names starting with prefix, sorted.
func (s *Sidecar) EntryNames(prefix string) []string {
	var names []string
	for name := range s.Entries {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// File is the sidecar's safetensors file, loaded on first use.
func (s *Sidecar) File() (*safetensors.File, error) {
	s.loadOnce.Do(func() { s.loaded, s.loadErr = safetensors.ReadFile(s.file) })
	return s.loaded, s.loadErr
}

// tensor returns the stored tensor for entry, failing the test when it is missing.
func (s *Sidecar) tensor(t testing.TB, entry string) *safetensors.Tensor {
	t.Helper()
	f, err := s.File()
	if err != nil {
		t.Fatalf("golden %s: %v", s.Name, err)
		return nil
	}
	tensor := f.Tensors[entry]
	if tensor == nil {
		t.Fatalf("golden %s: no entry %q in %s", s.Name, entry, f.Path)
		return nil
	}
	return tensor
}

// Float32 returns an entry's values as float32 and its shape; the test fails if it is missing.
// Reading an entry that has a tolerance (a reference output) counts as comparing it.
func (s *Sidecar) Float32(t testing.TB, entry string) ([]float32, []int) {
	t.Helper()
	s.noteReference(t, entry)
	tensor := s.tensor(t, entry)
	if tensor == nil {
		return nil, nil
	}
	v, err := tensor.Float32()
	if err != nil {
		t.Fatalf("golden %s %s: %v", s.Name, entry, err)
		return nil, nil
	}
	return v, tensor.Shape
}

// Tensor returns a float entry as a float32 GoMLX tensor, for feeding a
// model; the test fails if it is missing.
func (s *Sidecar) Tensor(t testing.TB, entry string) *tensors.Tensor {
	t.Helper()
	data, shape := s.Float32(t, entry)
	return tensors.FromFlatDataAndDimensions(data, shape...)
}

// Int64 returns an integer entry's values and its shape; the test fails if it is missing or float.
func (s *Sidecar) Int64(t testing.TB, entry string) ([]int64, []int) {
	t.Helper()
	s.noteReference(t, entry)
	tensor := s.tensor(t, entry)
	if tensor == nil {
		return nil, nil
	}
	v, err := tensor.Int64()
	if err != nil {
		t.Fatalf("golden %s %s: %v", s.Name, entry, err)
		return nil, nil
	}
	return v, tensor.Shape
}

// Host copies a float32 result tensor to the host, failing the test on any
// other dtype. (Not nn.TensorFloat32: nn imports hub, whose tests import this package.)
func Host(t testing.TB, x *tensors.Tensor) ([]float32, []int) {
	t.Helper()
	data, err := tensors.CopyFlatData[float32](x)
	if err != nil {
		t.Fatalf("%v (dtype %s)", err, x.DType())
	}
	return data, x.Shape().Dimensions
}

// MaxAbsDiff is the largest |a[i] - b[i]|, for tests that compare two runs.
func MaxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}
