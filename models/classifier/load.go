package classifier

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/nn"
)

// The files of a classifier folder.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
)

// Model is a classifier's config and weights on the host.
type Model struct {
	Config  *Config
	Weights *nn.Weights
}

// New is a freshly initialised classifier (PyTorch's default init).
func New(c *Config, seed uint64) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Model{Config: c, Weights: nn.RandomWeights(c.ParamShapes(), seed, 1)}, nil
}

// Load reads a classifier folder (config.json, model.safetensors).
func Load(dir string) (*Model, error) {
	cfg, err := hub.ReadModelConfig("classifier", filepath.Join(dir, ConfigFile), Config{})
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, WeightsFile)
	w, err := nn.ReadWeights(path)
	if err != nil {
		return nil, fmt.Errorf("classifier: %w", err)
	}
	if err := nn.CheckSchema("classifier "+path, cfg.ParamShapes(), w); err != nil {
		return nil, err
	}
	return &Model{Config: cfg, Weights: w}, nil
}

// Save writes the folder atomically: it is filled under a temporary name
// beside dir and renamed into place, so a killed save leaves either the
// old folder or the new one, never half of one.
func (m *Model) Save(dir string) error {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("classifier save: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("classifier save: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	cfg, err := m.Config.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, ConfigFile), cfg, 0o644); err != nil {
		return fmt.Errorf("classifier save: %w", err)
	}
	if err := nn.WriteWeights(filepath.Join(tmp, WeightsFile), m.Weights, "F32"); err != nil {
		return fmt.Errorf("classifier save: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("classifier save: %w", err)
	}
	// A folder cannot be renamed over a non-empty one: move the old one
	// aside first and drop it once the new one is in place.
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("classifier save: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("classifier save: %w", err)
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}
