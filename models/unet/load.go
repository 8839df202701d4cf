package unet

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute"

	"github.com/golcm/golcm/models/nn"
)

// Model is a UNet's config and weights on the host.
type Model struct {
	Config    *Config
	Weights   *nn.Weights
	RawConfig []byte // config.json as read, kept for export
}

// Load reads a diffusers unet/ folder: config.json and its weight file
// (variant "fp16" picks the .fp16. files; "" the full-precision ones).
func Load(dir, variant string) (*Model, error) { return LoadOn(nil, dir, variant) }

// LoadOn is Load reading the weights straight into b's buffers where b has
// shared buffers (nn.ReadWeightsOn): the Go backend then holds them once.
func LoadOn(b compute.Backend, dir, variant string) (*Model, error) {
	cfgPath := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	cfg, err := ParseConfig(raw, cfgPath)
	if err != nil {
		return nil, err
	}
	w, wpath, err := nn.ReadComponentOn(b, dir, variant)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Weights: w, RawConfig: raw}
	if err := m.CheckWeights(); err != nil {
		return nil, fmt.Errorf("%s: %w", wpath, err)
	}
	return m, nil
}

// Save writes config.json and diffusion_pytorch_model.safetensors (float32)
// into dir, the layout diffusers' from_pretrained reads.
func (m *Model) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, err := m.Config.Marshal(m.RawConfig)
	if err != nil {
		return fmt.Errorf("unet config: %w", err)
	}
	tmp := filepath.Join(dir, ".config.json.tmp")
	if err := os.WriteFile(tmp, cfg, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "config.json")); err != nil {
		return err
	}
	return nn.WriteWeights(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), m.Weights, "F32")
}

// CheckWeights compares the weight names and shapes with what the config
// needs, listing every missing, unexpected and mis-shaped weight.
func (m *Model) CheckWeights() error {
	return nn.CheckSchema("unet", m.Config.ParamShapes(), m.Weights)
}
