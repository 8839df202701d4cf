package clip

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/safetensors"
)

// Model is a text encoder's config and weights on the host.
type Model struct {
	Config  *Config
	Weights *nn.Weights
}

// positionIDsBuffer is the name transformers gave the registered buffer
// arange(max_position_embeddings). Before transformers 4.31 it was saved
// with the weights (SD 1.5's text_encoder/model.safetensors has it, as
// int64); it is a constant, not a parameter, so Load drops it and the graph
// uses positions 0..L-1 directly.
const positionIDsBuffer = "text_model.embeddings.position_ids"

// Load reads a transformers text_encoder/ folder: config.json and its
// weight file (model.safetensors, a sharded index, or with variant "fp16"
// the .fp16. files).
func Load(dir, variant string) (*Model, error) {
	cfg, err := ReadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	wpath, err := hub.WeightFile(dir, variant)
	if err != nil {
		return nil, err
	}
	w, err := readWeights(wpath)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Weights: w}
	if err := m.CheckWeights(); err != nil {
		return nil, fmt.Errorf("%s: %w", wpath, err)
	}
	return m, nil
}

// readWeights is nn.ReadWeights minus the position_ids buffer, which may be
// int64 and which nn.ReadWeights would reject as not a float.
func readWeights(path string) (*nn.Weights, error) {
	f, err := safetensors.ReadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	w := nn.NewWeights()
	for _, name := range f.Names() {
		if name == positionIDsBuffer {
			continue
		}
		t := f.Tensors[name]
		if !t.DType.IsFloat() {
			return nil, fmt.Errorf("%s: tensor %q has dtype %s, want a float", path, name, t.DType)
		}
		data, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: tensor %q: %w", path, name, err)
		}
		w.SetFloat32(name, data, t.Shape...)
	}
	return w, nil
}

// CheckWeights compares the weight names and shapes with what the config
// needs, listing every missing, unexpected and mis-shaped weight.
func (m *Model) CheckWeights() error {
	want := m.Config.ParamShapes()
	var missing, unexpected, wrong []string
	for name, dims := range want {
		t, ok := m.Weights.Get(name)
		if !ok {
			missing = append(missing, name)
			continue
		}
		if got := t.Shape().Dimensions; !slices.Equal(got, dims) {
			wrong = append(wrong, fmt.Sprintf("%s is %v, want %v", name, got, dims))
		}
	}
	for _, name := range m.Weights.Names() {
		if _, ok := want[name]; !ok {
			unexpected = append(unexpected, name)
		}
	}
	return nn.NameErrors("clip text encoder", missing, unexpected, wrong)
}
