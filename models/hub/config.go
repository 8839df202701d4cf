package hub

import (
	"encoding/json"
	"fmt"
	"os"
)

// ModelConfig is what a model package's config struct offers so that one
// reader serves them all (clip, vae, unet): it remembers the file it was
// read from, for errors, and checks itself against what golcm implements.
type ModelConfig[C any] interface {
	*C
	SetPath(path string)
	Validate() error
}

// ReadModelConfig reads the config.json at path on top of the model's
// defaults, then validates it; model names the kind in errors ("unet
// config …").
func ReadModelConfig[C any, P ModelConfig[C]](model, path string, defaults C) (*C, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s config: %w", model, err)
	}
	return ParseModelConfig[C, P](model, data, path, defaults)
}

// ParseModelConfig decodes config.json bytes on top of the defaults (path
// names the file in errors) and validates the result.
func ParseModelConfig[C any, P ModelConfig[C]](model string, data []byte, path string, defaults C) (*C, error) {
	c := &defaults
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%s config %s: %w", model, path, err)
	}
	P(c).SetPath(path)
	if err := P(c).Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ConfigError is a config problem naming the file and the key:
// "unet config path: key: message".
func ConfigError(model, path, key, format string, args ...any) error {
	return fmt.Errorf("%s config %s: %s: %s", model, path, key, fmt.Sprintf(format, args...))
}
