package nn

import (
	"fmt"
	"slices"

	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/safetensors"
)

// ReadWeights loads a safetensors file or a sharded checkpoint index as
// float32 weights (F16 and BF16 are widened). Names in skip are left out:
// buffers some checkpoints carry that are not parameters.
func ReadWeights(path string, skip ...string) (*Weights, error) {
	f, err := safetensors.ReadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	w := NewWeights()
	for _, name := range f.Names() {
		if slices.Contains(skip, name) {
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

// WriteWeights saves weights as one safetensors file in dtype (F32, F16 or
// BF16), atomically, with diffusers' {"format": "pt"} metadata.
func WriteWeights(path string, w *Weights, dtype safetensors.DType) error {
	var list []*safetensors.Tensor
	for _, name := range w.Names() {
		data, dims, err := w.Float32(name)
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		t, err := safetensors.FromFloat32As(name, dtype, dims, data)
		if err != nil {
			return fmt.Errorf("write %s: tensor %q: %w", path, name, err)
		}
		list = append(list, t)
	}
	return safetensors.WriteFile(path, list, map[string]string{"format": "pt"})
}

// ReadComponent reads the weights of a diffusers/transformers component
// folder (unet/, vae/, text_encoder/): the weight file hub.WeightFile picks
// for variant, minus the names in skip. It also returns that file's path
// for error messages.
func ReadComponent(dir, variant string, skip ...string) (*Weights, string, error) {
	path, err := hub.WeightFile(dir, variant)
	if err != nil {
		return nil, "", err
	}
	w, err := ReadWeights(path, skip...)
	return w, path, err
}
