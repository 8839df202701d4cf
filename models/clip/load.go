package clip

import (
	"fmt"
	"path/filepath"

	"github.com/gomlx/compute"

	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/nn"
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
func Load(dir, variant string) (*Model, error) { return LoadOn(nil, dir, variant) }

// LoadOn is Load reading the weights straight into b's buffers where b has
// shared buffers (nn.ReadWeightsOn).
func LoadOn(b compute.Backend, dir, variant string) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	w, wpath, err := nn.ReadComponentOn(b, dir, variant, positionIDsBuffer)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Weights: w}
	if err := m.CheckWeights(); err != nil {
		return nil, fmt.Errorf("%s: %w", wpath, err)
	}
	return m, nil
}

// LoadConfig reads only the folder's config.json: a pipeline that needs the architecture but not
// the weights (training from a latent cache) reads the weights later with Load.
func LoadConfig(dir string) (*Config, error) {
	return hub.ReadModelConfig[Config]("clip", filepath.Join(dir, "config.json"), defaultConfig())
}

// CheckWeights compares the weight names and shapes with what the config
// needs, listing every missing, unexpected and mis-shaped weight.
func (m *Model) CheckWeights() error {
	return nn.CheckSchema("clip text encoder", m.Config.ParamShapes(), m.Weights)
}
