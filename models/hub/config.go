package hub

import (
	"encoding/json"
	"fmt"
	"os"
)

// ModelConfig is what a model package's config struct offers so that one
// reader serves them all (clip, vae, unet): it remembers the file it was
// read from, for errors, and checks itself against what golcm implements.
type ModelConfig interface {
	SetPath(path string)
	Validate() error
}

// ReadModelConfig reads the config.json at path into c, which holds the
// model's defaults, then validates it; model names the kind in errors
// ("unet config …").
func ReadModelConfig[C ModelConfig](model, path string, c C) (C, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var zero C
		return zero, fmt.Errorf("%s config: %w", model, err)
	}
	return ParseModelConfig(model, data, path, c)
}

// ParseModelConfig decodes config.json bytes on top of the defaults in c
// (path names the file in errors) and validates the result.
func ParseModelConfig[C ModelConfig](model string, data []byte, path string, c C) (C, error) {
	var zero C
	if err := json.Unmarshal(data, c); err != nil {
		return zero, fmt.Errorf("%s config %s: %w", model, path, err)
	}
	c.SetPath(path)
	if err := c.Validate(); err != nil {
		return zero, err
	}
	return c, nil
}

// ConfigError is a config problem naming the file and the key:
// "unet config path: key: message".
func ConfigError(model, path, key, format string, args ...any) error {
	return fmt.Errorf("%s config %s: %s: %s", model, path, key, fmt.Sprintf(format, args...))
}
