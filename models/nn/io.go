package nn

import (
	"fmt"
	"io"
	"slices"

	"github.com/gomlx/compute"

	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/safetensors"
)

// ReadWeights loads a safetensors file or a sharded checkpoint index as
// float32 host weights (F16 and BF16 are widened). Names in skip are left
// out: buffers some checkpoints carry that are not parameters.
func ReadWeights(path string, skip ...string) (*Weights, error) {
	return ReadWeightsOn(nil, path, skip...)
}

// ReadWeightsOn is ReadWeights reading each tensor straight into b's
// buffers where b has shared buffers (NewFloat32On), one tensor at a time
// (safetensors.WalkCheckpoint): neither the file nor a host copy of the
// weights is held beside them.
func ReadWeightsOn(b compute.Backend, path string, skip ...string) (*Weights, error) {
	w := NewWeights()
	err := safetensors.WalkCheckpoint(path, func(e safetensors.HeaderEntry, data io.Reader) error {
		if slices.Contains(skip, e.Name) {
			return nil
		}
		if !e.DType.IsFloat() {
			return fmt.Errorf("dtype %s, want a float", e.DType)
		}
		t, err := NewFloat32On(b, e.Shape, func(out []float32) error { return safetensors.ReadFloat32(data, e.DType, out) })
		if err != nil {
			return err
		}
		w.Set(e.Name, t)
		return nil
	})
	if err != nil {
		w.Finalize()
		return nil, err
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
	return ReadComponentOn(nil, dir, variant, skip...)
}

// ReadComponentOn is ReadComponent reading into b's buffers (ReadWeightsOn).
func ReadComponentOn(b compute.Backend, dir, variant string, skip ...string) (*Weights, string, error) {
	path, err := hub.WeightFile(dir, variant)
	if err != nil {
		return nil, "", err
	}
	w, err := ReadWeightsOn(b, path, skip...)
	return w, path, err
}
