package nn

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	"github.com/gomlx/compute/dtypes/float16"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
)

// Weights is a named set of host tensors (float32, or a half precision after
// Convert), keyed by state-dict name.
type Weights struct {
	tensors map[string]*tensors.Tensor
}

// NewWeights returns an empty set.
func NewWeights() *Weights { return &Weights{tensors: map[string]*tensors.Tensor{}} }

// Set stores t under name, replacing any earlier tensor.
func (w *Weights) Set(name string, t *tensors.Tensor) { w.tensors[name] = t }

// SetFloat32 stores a float32 tensor built from data and dims.
func (w *Weights) SetFloat32(name string, data []float32, dims ...int) {
	w.tensors[name] = tensors.FromFlatDataAndDimensions(data, dims...)
}

// Get returns the tensor stored under name.
func (w *Weights) Get(name string) (*tensors.Tensor, bool) {
	t, ok := w.tensors[name]
	return t, ok
}

// Delete removes name.
func (w *Weights) Delete(name string) { delete(w.tensors, name) }

// Finalize frees every tensor now (backend buffers included) and empties
// the set, rather than waiting for the garbage collector.
func (w *Weights) Finalize() {
	for name, t := range w.tensors {
		if t.Ok() {
			t.MustFinalizeAll()
		}
		delete(w.tensors, name)
	}
}

// Len is the number of tensors.
func (w *Weights) Len() int { return len(w.tensors) }

// Names returns every name, sorted: the order weights are fed to graphs in.
func (w *Weights) Names() []string {
	names := make([]string, 0, len(w.tensors))
	for n := range w.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WithPrefix returns the names that start with prefix, sorted.
func (w *Weights) WithPrefix(prefix string) []string {
	var names []string
	for _, n := range w.Names() {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	return names
}

// Tensors returns the tensors in Names order.
func (w *Weights) Tensors() []*tensors.Tensor {
	names := w.Names()
	out := make([]*tensors.Tensor, len(names))
	for i, n := range names {
		out[i] = w.tensors[n]
	}
	return out
}

// NumParameters counts scalar parameters.
func (w *Weights) NumParameters() int {
	n := 0
	for _, t := range w.tensors {
		n += t.Size()
	}
	return n
}

// Float32 copies one tensor's values to the host.
func (w *Weights) Float32(name string) ([]float32, []int, error) {
	t, ok := w.tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("weight %q not found", name)
	}
	return TensorFloat32(t)
}

// Clone copies every tensor (host copies), so the clone can be changed
// independently, as the EMA target is from the student.
func (w *Weights) Clone() (*Weights, error) {
	out := NewWeights()
	for n, t := range w.tensors {
		data, dims, err := TensorFloat32(t)
		if err != nil {
			return nil, fmt.Errorf("clone %q: %w", n, err)
		}
		out.SetFloat32(n, data, dims...)
	}
	return out, nil
}

// Convert stores every float32 tensor in dtype instead (Float32,
// BFloat16 or Float16, rounding to nearest even), one tensor at a time, so
// the float32 copies can be collected as it goes: mixed precision keeps
// frozen networks this way, at half their float32 bytes. Tensors of other
// dtypes are left as they are.
func (w *Weights) Convert(dtype dtypes.DType) error {
	if dtype != dtypes.Float32 && dtype != dtypes.BFloat16 && dtype != dtypes.Float16 {
		return fmt.Errorf("convert weights: dtype %s is not float32, bfloat16 or float16", dtype)
	}
	for _, name := range w.Names() {
		t := w.tensors[name]
		if t.DType() != dtypes.Float32 || dtype == dtypes.Float32 {
			continue
		}
		data, dims, err := TensorFloat32(t)
		if err != nil {
			return fmt.Errorf("convert weight %q: %w", name, err)
		}
		switch dtype {
		case dtypes.BFloat16:
			w.tensors[name] = tensors.FromFlatDataAndDimensions(bfloat16.FromFloat32s(data...), dims...)
		case dtypes.Float16:
			w.tensors[name] = tensors.FromFlatDataAndDimensions(float16.FromFloat32s(data...), dims...)
		}
		t.FinalizeAll()
	}
	return nil
}

// Bytes is the memory the tensors take, in bytes.
func (w *Weights) Bytes() int64 {
	var n int64
	for _, t := range w.tensors {
		n += int64(t.Memory())
	}
	return n
}

// TensorFloat32 copies a float32 tensor's flat values and dimensions.
func TensorFloat32(t *tensors.Tensor) (data []float32, dims []int, err error) {
	if t.DType() != dtypes.Float32 {
		return nil, nil, fmt.Errorf("tensor has dtype %s, want float32", t.DType())
	}
	data, err = tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, nil, err
	}
	return data, t.Shape().Dimensions, nil
}

// CheckSchema compares weights with a schema (name → shape), listing every
// missing, unexpected and mis-shaped weight in one error naming model.
func CheckSchema(model string, want map[string][]int, w *Weights) error {
	var missing, unexpected, wrong []string
	for name, dims := range want {
		t, ok := w.Get(name)
		if !ok {
			missing = append(missing, name)
			continue
		}
		if got := t.Shape().Dimensions; !slices.Equal(got, dims) {
			wrong = append(wrong, fmt.Sprintf("%s is %v, want %v", name, got, dims))
		}
	}
	for _, name := range w.Names() {
		if _, ok := want[name]; !ok {
			unexpected = append(unexpected, name)
		}
	}
	return NameErrors(model, missing, unexpected, wrong)
}

// NameErrors formats missing, unexpected and mis-shaped weight names as one
// error (nil when all lists are empty).
func NameErrors(model string, missing, unexpected, wrong []string) error {
	if len(missing)+len(unexpected)+len(wrong) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	sort.Strings(wrong)
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d missing weights: %s", len(missing), abbreviate(missing, 12)))
	}
	if len(unexpected) > 0 {
		parts = append(parts, fmt.Sprintf("%d unexpected weights: %s", len(unexpected), abbreviate(unexpected, 12)))
	}
	if len(wrong) > 0 {
		parts = append(parts, fmt.Sprintf("%d weights with the wrong shape: %s", len(wrong), abbreviate(wrong, 12)))
	}
	return fmt.Errorf("%s: %s", model, strings.Join(parts, "; "))
}

// NewFloat32On returns a float32 tensor of dims filled by fill. Where b has
// shared buffers (the Go backend) its storage is a backend buffer that
// graphs read in place: a weight made this way is never held twice, as a
// host copy and a buffer, and its buffer is allocated before any host copy
// is freed. (The Go backend rounds a buffer up to a size class, up to a
// third more; a buffer in memory the process never used is not touched past
// its data, one in memory a freed host copy left is cleared whole, so
// uploading host copies one at a time made an SD 1.5 UNet's 3.3 GiB of
// weights 3.9 GiB resident.) With a nil b, or one without shared buffers
// (XLA), it is a host tensor.
func NewFloat32On(b compute.Backend, dims []int, fill func([]float32) error) (*tensors.Tensor, error) {
	if b == nil || !b.HasSharedBuffers() {
		size := 1
		for _, d := range dims {
			size *= d
		}
		data := make([]float32, size)
		if err := fill(data); err != nil {
			return nil, err
		}
		return tensors.FromFlatDataAndDimensions(data, dims...), nil
	}
	t, err := tensors.FromShapeForBackend(b, 0, shapes.Make(dtypes.Float32, dims...))
	if err != nil {
		return nil, err
	}
	var ferr error
	if err := tensors.MutableFlatData(t, func(flat []float32) { ferr = fill(flat) }); err != nil {
		return nil, err
	}
	if ferr != nil {
		t.MustFinalizeAll()
		return nil, ferr
	}
	return t, nil
}
