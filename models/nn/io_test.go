package nn

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/safetensors"
)

// TestReadWeightsOnStreamsIntoBackendBuffers: a checkpoint of F32, F16,
// BF16 and F64 tensors reads to the values written, as host tensors
// (ReadWeights) and as backend buffers the host shares (ReadWeightsOn on
// the Go backend); skipped names are left out and an integer tensor is an
// error naming it.
func TestReadWeightsOnStreamsIntoBackendBuffers(t *testing.T) {
	b, _, err := backend.Default("go")
	if err != nil {
		t.Fatal(err)
	}
	// Long enough that the widened dtypes cross ReadFloat32's buffer.
	long := make([]float32, 70000)
	for i := range long {
		long[i] = float32(i%1000) / 8 // exact in every dtype below
	}
	want := map[string][]float32{"a": {1.5, -2, 0.25, 3}, "b": long, "c": {-0.5, 7}, "d": {42}}
	dtypes := map[string]safetensors.DType{"a": safetensors.F32, "b": safetensors.F16, "c": safetensors.BF16, "d": safetensors.F64}
	shapes := map[string][]int{"a": {2, 2}, "b": {70000}, "c": {2}, "d": {}}
	var list []*safetensors.Tensor
	for _, name := range []string{"a", "b", "c", "d"} {
		var st *safetensors.Tensor
		if dtypes[name] == safetensors.F64 {
			st = f64Tensor(name, shapes[name], want[name])
		} else if st, err = safetensors.FromFloat32As(name, dtypes[name], shapes[name], want[name]); err != nil {
			t.Fatal(err)
		}
		list = append(list, st)
	}
	list = append(list, safetensors.FromFloat32("skipped", []int{1}, []float32{9}))
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := safetensors.WriteFile(path, list, nil); err != nil {
		t.Fatal(err)
	}
	for _, onBackend := range []bool{false, true} {
		var w *Weights
		if onBackend {
			w, err = ReadWeightsOn(b, path, "skipped")
		} else {
			w, err = ReadWeights(path, "skipped")
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Names(); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
			t.Errorf("on backend %v: names %v", onBackend, got)
		}
		for name, values := range want {
			tensor, _ := w.Get(name)
			if tensor.IsShared() != onBackend {
				t.Errorf("on backend %v: %s shared = %v", onBackend, name, tensor.IsShared())
			}
			got, dims, err := TensorFloat32(tensor)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dims, shapes[name]) || !slices.Equal(got, values) {
				t.Errorf("on backend %v: %s = %v %v, want %v %v", onBackend, name, dims, head(got), shapes[name], head(values))
			}
		}
		w.Finalize()
	}

	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := safetensors.WriteFile(bad, []*safetensors.Tensor{safetensors.FromInt64("ids", []int{2}, []int64{1, 2})}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadWeightsOn(b, bad); err == nil || !strings.Contains(err.Error(), `"ids"`) || !strings.Contains(err.Error(), "float") {
		t.Errorf("an int64 tensor: err = %v, want it named and a float asked for", err)
	}
}

func f64Tensor(name string, shape []int, values []float32) *safetensors.Tensor {
	data := make([]byte, 8*len(values))
	for i, v := range values {
		bits := math.Float64bits(float64(v))
		for j := range 8 {
			data[8*i+j] = byte(bits >> (8 * j))
		}
	}
	return &safetensors.Tensor{Name: name, DType: safetensors.F64, Shape: shape, Data: data}
}

func head(v []float32) []float32 { return v[:min(len(v), 4)] }

// TestRandomWeightsOnMatchesHost: the same seed draws the same weights
// into backend buffers as into host tensors.
func TestRandomWeightsOnMatchesHost(t *testing.T) {
	b, _, err := backend.Default("go")
	if err != nil {
		t.Fatal(err)
	}
	schema := map[string][]int{"lin.weight": {3, 4}, "lin.bias": {3}, "norm.weight": {4}, "norm.bias": {4}, "tok_embedding.weight": {5, 2}}
	host := RandomWeights(schema, 7, 0.5)
	dev, err := RandomWeightsOn(b, schema, 7, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range host.Names() {
		h, _, _ := host.Float32(name)
		d, _, _ := dev.Float32(name)
		tensor, _ := dev.Get(name)
		if !slices.Equal(h, d) || !tensor.IsShared() {
			t.Errorf("%s: backend %v (shared %v), host %v", name, d, tensor.IsShared(), h)
		}
	}
}
