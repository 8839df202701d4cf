package classifier

import (
	"encoding/json"
	"fmt"

	"github.com/golcm/golcm/models/hub"
)

// Config is a classifier's architecture, stored as config.json.
type Config struct {
	// InChannels of the input images (1: grayscale; RGB images are averaged
	// to gray by the callers that feed them).
	InChannels int `json:"in_channels"`
	// ImageSize is the side of the square input images.
	ImageSize int `json:"image_size"`
	// Channels are the output channels of the 3×3 stride-2 convolutions, in
	// order; each halves the image side, so ImageSize must be divisible by
	// 2^len(Channels).
	Channels []int `json:"channels"`
	// FeatureDim is the width of the penultimate layer (the features).
	FeatureDim int `json:"feature_dim"`
	// Labels names the classes, in logit order.
	Labels []string `json:"labels"`

	Path string `json:"-"` // the file it was read from, for errors
}

// DefaultConfig is the Fashion-MNIST classifier: 32×32 grayscale (the
// 28×28 images padded, as the teacher's data), three stride-2 convolutions
// of 32, 64 and 128 channels, 128 features, the data set's ten classes.
func DefaultConfig() Config {
	return Config{
		InChannels: 1, ImageSize: 32, Channels: []int{32, 64, 128}, FeatureDim: 128,
		Labels: []string{"t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
			"sneaker", "bag", "ankle boot"},
	}
}

// ParseConfig decodes config.json bytes and validates them; no key has a
// default, so a file states the whole architecture.
func ParseConfig(data []byte, path string) (*Config, error) {
	return hub.ParseModelConfig("classifier", data, path, Config{})
}

// SetPath records the file the config came from.
func (c *Config) SetPath(path string) { c.Path = path }

// NumClasses is the number of logits.
func (c *Config) NumClasses() int { return len(c.Labels) }

// Validate checks the sizes fit together.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return hub.ConfigError("classifier", c.Path, key, format, args...)
	}
	switch {
	case c.InChannels <= 0:
		return bad("in_channels", "%d, want at least 1", c.InChannels)
	case len(c.Channels) == 0:
		return bad("channels", "empty, want at least one convolution")
	case c.ImageSize <= 0 || c.ImageSize%(1<<len(c.Channels)) != 0:
		return bad("image_size", "%d, want a positive multiple of %d (2^len(channels))", c.ImageSize, 1<<len(c.Channels))
	case c.FeatureDim <= 0:
		return bad("feature_dim", "%d, want at least 1", c.FeatureDim)
	case len(c.Labels) < 2:
		return bad("labels", "%d classes, want at least 2", len(c.Labels))
	}
	for i, ch := range c.Channels {
		if ch <= 0 {
			return bad("channels", "entry %d is %d, want at least 1", i, ch)
		}
	}
	return nil
}

// Marshal is the config.json bytes.
func (c *Config) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("classifier config: %w", err)
	}
	return append(data, '\n'), nil
}

// flatDim is the input width of the feature layer: the last convolution's
// channels times its output side squared.
func (c *Config) flatDim() int {
	side := c.ImageSize >> len(c.Channels)
	return c.Channels[len(c.Channels)-1] * side * side
}
