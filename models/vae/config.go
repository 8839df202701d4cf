package vae

import (
	"encoding/json"
	"strings"

	"github.com/golcm/golcm/models/hub"
)

// Config is the part of diffusers' AutoencoderKL config.json golcm reads.
// Every size comes from here; values golcm does not implement are rejected
// by Validate rather than ignored.
type Config struct {
	ClassName        string   `json:"_class_name"`
	InChannels       int      `json:"in_channels"`
	OutChannels      int      `json:"out_channels"`
	DownBlockTypes   []string `json:"down_block_types"`
	UpBlockTypes     []string `json:"up_block_types"`
	BlockOutChannels []int    `json:"block_out_channels"`
	LayersPerBlock   int      `json:"layers_per_block"`
	ActFn            string   `json:"act_fn"`
	LatentChannels   int      `json:"latent_channels"`
	NormNumGroups    int      `json:"norm_num_groups"`
	// ScalingFactor and ShiftFactor map the posterior to the diffusion
	// model's latent space: z = (x - shift) * scale (diffusers pipelines;
	// shift_factor null means 0).
	ScalingFactor float64  `json:"scaling_factor"`
	ShiftFactor   *float64 `json:"shift_factor"`
	// LatentsMean and LatentsStd are per-channel statistics some newer
	// pipelines normalise with instead; golcm does not, so they must be null.
	LatentsMean json.RawMessage `json:"latents_mean"`
	LatentsStd  json.RawMessage `json:"latents_std"`
	// ForceUpcast says the VAE overflows in float16 (SD-XL's original VAE);
	// golcm runs the VAE in float32 anyway, so it is informational.
	ForceUpcast          bool `json:"force_upcast"`
	MidBlockAddAttention bool `json:"mid_block_add_attention"`
	UseQuantConv         bool `json:"use_quant_conv"`
	UsePostQuantConv     bool `json:"use_post_quant_conv"`

	Path string `json:"-"` // file it came from, for errors
}

// defaultConfig holds diffusers' AutoencoderKL constructor defaults for keys
// a config.json may omit.
func defaultConfig() Config {
	return Config{
		InChannels:           3,
		OutChannels:          3,
		DownBlockTypes:       []string{"DownEncoderBlock2D"},
		UpBlockTypes:         []string{"UpDecoderBlock2D"},
		BlockOutChannels:     []int{64},
		LayersPerBlock:       1,
		ActFn:                "silu",
		LatentChannels:       4,
		NormNumGroups:        32,
		ScalingFactor:        0.18215,
		ForceUpcast:          true,
		MidBlockAddAttention: true,
		UseQuantConv:         true,
		UsePostQuantConv:     true,
	}
}

// ParseConfig decodes config.json bytes (path is used in errors) on top of
// diffusers' defaults and validates the result (hub.ParseModelConfig).
func ParseConfig(data []byte, path string) (*Config, error) {
	return hub.ParseModelConfig[Config]("vae", data, path, defaultConfig())
}

// SetPath records the file the config was read from, for errors.
func (c *Config) SetPath(path string) { c.Path = path }

func (c *Config) errorf(key string, format string, args ...any) error {
	return hub.ConfigError("vae", c.Path, key, format, args...)
}

// Validate checks every key against what golcm implements.
func (c *Config) Validate() error {
	if c.ClassName != "" && c.ClassName != "AutoencoderKL" {
		return c.errorf("_class_name", "value %q is not supported by golcm (supported: AutoencoderKL)", c.ClassName)
	}
	n := len(c.BlockOutChannels)
	if n == 0 {
		return c.errorf("block_out_channels", "is empty")
	}
	if len(c.DownBlockTypes) != n {
		return c.errorf("down_block_types", "has %d entries, want %d (one per block_out_channels)", len(c.DownBlockTypes), n)
	}
	if len(c.UpBlockTypes) != n {
		return c.errorf("up_block_types", "has %d entries, want %d (one per block_out_channels)", len(c.UpBlockTypes), n)
	}
	for _, t := range c.DownBlockTypes {
		if t != "DownEncoderBlock2D" {
			return c.errorf("down_block_types", "value %q is not supported by golcm (supported: DownEncoderBlock2D)", t)
		}
	}
	for _, t := range c.UpBlockTypes {
		if t != "UpDecoderBlock2D" {
			return c.errorf("up_block_types", "value %q is not supported by golcm (supported: UpDecoderBlock2D)", t)
		}
	}
	if c.NormNumGroups <= 0 {
		return c.errorf("norm_num_groups", "value %d must be positive", c.NormNumGroups)
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return c.errorf("block_out_channels", "%d channels at level %d do not split into norm_num_groups=%d", ch, i, c.NormNumGroups)
		}
	}
	checks := []struct {
		ok    bool
		key   string
		value any
	}{
		{c.ActFn == "silu", "act_fn", c.ActFn},
		{c.InChannels > 0, "in_channels", c.InChannels},
		{c.OutChannels > 0, "out_channels", c.OutChannels},
		{c.LatentChannels > 0, "latent_channels", c.LatentChannels},
		{c.LayersPerBlock > 0, "layers_per_block", c.LayersPerBlock},
		{c.ScalingFactor > 0, "scaling_factor", c.ScalingFactor},
		{isNull(c.LatentsMean), "latents_mean", string(c.LatentsMean)},
		{isNull(c.LatentsStd), "latents_std", string(c.LatentsStd)},
	}
	for _, ch := range checks {
		if !ch.ok {
			return c.errorf(ch.key, "value %v is not supported by golcm", ch.value)
		}
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// Shift is shift_factor, 0 when null.
func (c *Config) Shift() float64 {
	if c.ShiftFactor == nil {
		return 0
	}
	return *c.ShiftFactor
}

// DownsampleFactor is how much the encoder shrinks an image (2 per level
// but the last).
func (c *Config) DownsampleFactor() int { return 1 << (len(c.BlockOutChannels) - 1) }
