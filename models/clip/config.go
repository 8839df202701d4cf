package clip

import (
	"strings"

	"github.com/golcm/golcm/models/hub"
)

// Architectures golcm builds from a text encoder's config.json.
const (
	TextModel               = "CLIPTextModel"
	TextModelWithProjection = "CLIPTextModelWithProjection"
)

// Config is the part of transformers' CLIPTextConfig (a text_encoder*/
// config.json) golcm reads. Values golcm does not implement are rejected by
// Validate rather than ignored.
type Config struct {
	Architectures         []string `json:"architectures"`
	ModelType             string   `json:"model_type"`
	VocabSize             int      `json:"vocab_size"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	ProjectionDim         int      `json:"projection_dim"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	HiddenAct             string   `json:"hidden_act"`
	LayerNormEps          float64  `json:"layer_norm_eps"`
	// EOSTokenID picks the pooled position: 2 (the legacy value in real
	// SD 1.x/SD-XL configs) means "the largest token id", anything else the
	// first position holding this id (transformers' CLIPTextTransformer).
	EOSTokenID int `json:"eos_token_id"`

	// WithProjection is set by Validate from architectures: the model has
	// text_projection (CLIPTextModelWithProjection, SD-XL's second encoder).
	WithProjection bool   `json:"-"`
	Path           string `json:"-"` // file it came from, for errors
}

// defaultConfig holds transformers 4.35's CLIPTextConfig defaults for keys a
// config.json may omit. eos_token_id defaults to 49407 since transformers
// 4.31 (PR #24773); configs saved earlier state 2 explicitly.
func defaultConfig() Config {
	return Config{
		VocabSize:             49408,
		HiddenSize:            512,
		IntermediateSize:      2048,
		ProjectionDim:         512,
		NumHiddenLayers:       12,
		NumAttentionHeads:     8,
		MaxPositionEmbeddings: 77,
		HiddenAct:             "quick_gelu",
		LayerNormEps:          1e-5,
		EOSTokenID:            49407,
	}
}

// ParseConfig decodes config.json bytes (path is used in errors) on top of
// transformers' defaults and validates the result (hub.ParseModelConfig).
func ParseConfig(data []byte, path string) (*Config, error) {
	return hub.ParseModelConfig[Config]("clip", data, path, defaultConfig())
}

// SetPath records the file the config was read from, for errors.
func (c *Config) SetPath(path string) { c.Path = path }

func (c *Config) errorf(key string, format string, args ...any) error {
	return hub.ConfigError("clip", c.Path, key, format, args...)
}

// Validate checks every key against what golcm implements and sets
// WithProjection. A config without architectures is taken as a plain
// CLIPTextModel (a stray text_projection.weight is then reported by
// CheckWeights).
func (c *Config) Validate() error {
	c.WithProjection = false
	switch len(c.Architectures) {
	case 0:
	case 1:
		switch c.Architectures[0] {
		case TextModel:
		case TextModelWithProjection:
			c.WithProjection = true
		default:
			return c.errorf("architectures", "value %q is not supported by golcm (supported: %s, %s)",
				c.Architectures[0], TextModel, TextModelWithProjection)
		}
	default:
		return c.errorf("architectures", "value %q names %d models, want one", strings.Join(c.Architectures, ","), len(c.Architectures))
	}
	if c.ModelType != "" && c.ModelType != "clip_text_model" {
		return c.errorf("model_type", "value %q is not supported by golcm (supported: clip_text_model)", c.ModelType)
	}
	if c.HiddenAct != "quick_gelu" && c.HiddenAct != "gelu" {
		return c.errorf("hidden_act", "value %q is not supported by golcm (supported: quick_gelu, gelu)", c.HiddenAct)
	}
	if c.NumAttentionHeads <= 0 || c.HiddenSize%c.NumAttentionHeads != 0 {
		return c.errorf("num_attention_heads", "value %d does not divide hidden_size=%d", c.NumAttentionHeads, c.HiddenSize)
	}
	checks := []struct {
		ok    bool
		key   string
		value any
	}{
		{c.VocabSize > 0, "vocab_size", c.VocabSize},
		{c.HiddenSize > 0, "hidden_size", c.HiddenSize},
		{c.IntermediateSize > 0, "intermediate_size", c.IntermediateSize},
		{c.NumHiddenLayers > 0, "num_hidden_layers", c.NumHiddenLayers},
		{c.MaxPositionEmbeddings > 0, "max_position_embeddings", c.MaxPositionEmbeddings},
		{c.LayerNormEps > 0, "layer_norm_eps", c.LayerNormEps},
		{!c.WithProjection || c.ProjectionDim > 0, "projection_dim", c.ProjectionDim},
	}
	for _, ch := range checks {
		if !ch.ok {
			return c.errorf(ch.key, "value %v is not supported by golcm", ch.value)
		}
	}
	if c.EOSTokenID < 0 || c.EOSTokenID >= c.VocabSize {
		return c.errorf("eos_token_id", "value %d is outside the vocabulary (vocab_size %d)", c.EOSTokenID, c.VocabSize)
	}
	return nil
}

// HeadDim is the width of one attention head.
func (c *Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// OutputDim is the width of the pooled output a conditioning uses:
// projection_dim for CLIPTextModelWithProjection, else hidden_size.
func (c *Config) OutputDim() int {
	if c.WithProjection {
		return c.ProjectionDim
	}
	return c.HiddenSize
}
