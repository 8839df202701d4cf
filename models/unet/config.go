package unet

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/golcm/golcm/models/hub"
)

// Config is the part of diffusers' UNet2DConditionModel config.json golcm
// reads. Every size comes from here; values golcm does not implement are
// rejected by Validate rather than ignored.
type Config struct {
	InChannels               int             `json:"in_channels"`
	OutChannels              int             `json:"out_channels"`
	DownBlockTypes           []string        `json:"down_block_types"`
	MidBlockType             *string         `json:"mid_block_type"`
	UpBlockTypes             []string        `json:"up_block_types"`
	BlockOutChannels         []int           `json:"block_out_channels"`
	LayersPerBlock           json.RawMessage `json:"layers_per_block"`
	DownsamplePadding        int             `json:"downsample_padding"`
	MidBlockScaleFactor      float64         `json:"mid_block_scale_factor"`
	ActFn                    string          `json:"act_fn"`
	NormNumGroups            int             `json:"norm_num_groups"`
	NormEps                  float64         `json:"norm_eps"`
	CrossAttentionDim        json.RawMessage `json:"cross_attention_dim"`
	TransformerLayers        json.RawMessage `json:"transformer_layers_per_block"`
	ReverseTransformerLayers json.RawMessage `json:"reverse_transformer_layers_per_block"`
	AttentionHeadDim         json.RawMessage `json:"attention_head_dim"`
	NumAttentionHeads        json.RawMessage `json:"num_attention_heads"`
	UseLinearProjection      bool            `json:"use_linear_projection"`
	UpcastAttention          bool            `json:"upcast_attention"`
	OnlyCrossAttention       json.RawMessage `json:"only_cross_attention"`
	DualCrossAttention       bool            `json:"dual_cross_attention"`
	ClassEmbedType           *string         `json:"class_embed_type"`
	NumClassEmbeds           *int            `json:"num_class_embeds"`
	AdditionEmbedType        *string         `json:"addition_embed_type"`
	AdditionTimeEmbedDim     *int            `json:"addition_time_embed_dim"`
	ProjectionClassEmbedsDim *int            `json:"projection_class_embeddings_input_dim"`
	EncoderHidDim            *int            `json:"encoder_hid_dim"`
	TimeEmbeddingType        string          `json:"time_embedding_type"`
	TimeEmbeddingDim         *int            `json:"time_embedding_dim"`
	TimeEmbeddingActFn       *string         `json:"time_embedding_act_fn"`
	TimestepPostAct          *string         `json:"timestep_post_act"`
	TimeCondProjDim          *int            `json:"time_cond_proj_dim"`
	FlipSinToCos             bool            `json:"flip_sin_to_cos"`
	FreqShift                float64         `json:"freq_shift"`
	ConvInKernel             int             `json:"conv_in_kernel"`
	ConvOutKernel            int             `json:"conv_out_kernel"`
	ResnetTimeScaleShift     string          `json:"resnet_time_scale_shift"`
	ResnetSkipTimeAct        bool            `json:"resnet_skip_time_act"`
	ResnetOutScaleFactor     float64         `json:"resnet_out_scale_factor"`
	CenterInputSample        bool            `json:"center_input_sample"`
	AttentionType            string          `json:"attention_type"`
	Dropout                  float64         `json:"dropout"`
	SampleSize               json.RawMessage `json:"sample_size"`

	// Resolved per-level values, filled by Resolve.
	Layers      []int  `json:"-"` // resnets per down level
	Heads       []int  `json:"-"` // attention heads per level
	CrossDims   []int  `json:"-"` // cross-attention context width per level
	Transformer []int  `json:"-"` // transformer blocks per down level (mid uses the last)
	ReverseTr   []int  `json:"-"` // transformer blocks per up level
	Path        string `json:"-"` // file it came from, for errors
}

// defaultConfig holds diffusers' constructor defaults for keys a config.json
// may omit.
func defaultConfig() Config {
	mid := "UNetMidBlock2DCrossAttn"
	return Config{
		InChannels: 4, OutChannels: 4,
		DownBlockTypes:       []string{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
		MidBlockType:         &mid,
		UpBlockTypes:         []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
		BlockOutChannels:     []int{320, 640, 1280, 1280},
		LayersPerBlock:       json.RawMessage("2"),
		DownsamplePadding:    1,
		MidBlockScaleFactor:  1,
		ActFn:                "silu",
		NormNumGroups:        32,
		NormEps:              1e-5,
		CrossAttentionDim:    json.RawMessage("1280"),
		TransformerLayers:    json.RawMessage("1"),
		AttentionHeadDim:     json.RawMessage("8"),
		FlipSinToCos:         true,
		TimeEmbeddingType:    "positional",
		ConvInKernel:         3,
		ConvOutKernel:        3,
		ResnetTimeScaleShift: "default",
		ResnetOutScaleFactor: 1,
		AttentionType:        "default",
	}
}

// ParseConfig decodes config.json bytes (path is used in errors) on top of
// diffusers' defaults and validates the result (hub.ParseModelConfig).
func ParseConfig(data []byte, path string) (*Config, error) {
	return hub.ParseModelConfig[Config]("unet", data, path, defaultConfig())
}

// SetPath records the file the config was read from, for errors.
func (c *Config) SetPath(path string) { c.Path = path }

// Marshal writes the config back as diffusers' config.json, with
// time_cond_proj_dim as currently set.
func (c *Config) Marshal(original []byte) ([]byte, error) {
	m := map[string]any{}
	if len(original) > 0 {
		if err := json.Unmarshal(original, &m); err != nil {
			return nil, err
		}
	}
	if c.TimeCondProjDim != nil {
		m["time_cond_proj_dim"] = *c.TimeCondProjDim
	} else {
		m["time_cond_proj_dim"] = nil
	}
	if _, ok := m["_class_name"]; !ok {
		m["_class_name"] = "UNet2DConditionModel"
	}
	return json.MarshalIndent(m, "", "  ")
}

func (c *Config) errorf(key string, format string, args ...any) error {
	return hub.ConfigError("unet", c.Path, key, format, args...)
}

// perLevel reads a key that is an int (same for every level) or a list with
// one entry per level; null gives def.
func (c *Config) perLevel(key string, raw json.RawMessage, n int, def []int) ([]int, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return def, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		out := make([]int, n)
		for i := range out {
			out[i] = one
		}
		return out, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, c.errorf(key, "want an int or a list of ints, got %s", s)
	}
	if len(list) != n {
		return nil, c.errorf(key, "has %d entries, want %d (one per block)", len(list), n)
	}
	return list, nil
}

// Validate checks every key against what golcm implements and fills the
// per-level fields.
func (c *Config) Validate() error {
	n := len(c.BlockOutChannels)
	if n == 0 {
		return c.errorf("block_out_channels", "is empty")
	}
	if len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		return c.errorf("down_block_types", "%d down and %d up blocks for %d block_out_channels",
			len(c.DownBlockTypes), len(c.UpBlockTypes), n)
	}
	for _, t := range c.DownBlockTypes {
		if t != "DownBlock2D" && t != "CrossAttnDownBlock2D" {
			return c.errorf("down_block_types", "unsupported block %q (supported: DownBlock2D, CrossAttnDownBlock2D)", t)
		}
	}
	for _, t := range c.UpBlockTypes {
		if t != "UpBlock2D" && t != "CrossAttnUpBlock2D" {
			return c.errorf("up_block_types", "unsupported block %q (supported: UpBlock2D, CrossAttnUpBlock2D)", t)
		}
	}
	if c.MidBlockType == nil || *c.MidBlockType != "UNetMidBlock2DCrossAttn" {
		v := "null"
		if c.MidBlockType != nil {
			v = *c.MidBlockType
		}
		return c.errorf("mid_block_type", "unsupported %q (supported: UNetMidBlock2DCrossAttn)", v)
	}
	var err error
	if c.Layers, err = c.perLevel("layers_per_block", c.LayersPerBlock, n, nil); err != nil {
		return err
	}
	// diffusers: num_attention_heads = num_attention_heads or attention_head_dim;
	// the "head dim" key actually counts heads (a naming quirk kept for
	// backward compatibility).
	heads, err := c.perLevel("attention_head_dim", c.AttentionHeadDim, n, nil)
	if err != nil {
		return err
	}
	if c.Heads, err = c.perLevel("num_attention_heads", c.NumAttentionHeads, n, heads); err != nil {
		return err
	}
	if c.CrossDims, err = c.perLevel("cross_attention_dim", c.CrossAttentionDim, n, nil); err != nil {
		return err
	}
	if c.Transformer, err = c.perLevel("transformer_layers_per_block", c.TransformerLayers, n, nil); err != nil {
		return err
	}
	rev := slices.Clone(c.Transformer)
	slices.Reverse(rev)
	if c.ReverseTr, err = c.perLevel("reverse_transformer_layers_per_block", c.ReverseTransformerLayers, n, rev); err != nil {
		return err
	}
	if c.Layers == nil || c.Heads == nil || c.CrossDims == nil || c.Transformer == nil {
		return c.errorf("layers_per_block", "layers_per_block, attention heads, cross_attention_dim and transformer_layers_per_block are required")
	}
	for i, ch := range c.BlockOutChannels {
		if ch <= 0 || ch%c.NormNumGroups != 0 {
			return c.errorf("block_out_channels", "%d channels at level %d do not split into norm_num_groups=%d", ch, i, c.NormNumGroups)
		}
		attends := c.DownBlockTypes[i] == "CrossAttnDownBlock2D" || c.UpBlockTypes[n-1-i] == "CrossAttnUpBlock2D" || i == n-1
		if attends && (c.Heads[i] <= 0 || ch%c.Heads[i] != 0) {
			return c.errorf("attention_head_dim", "%d heads at level %d do not divide %d channels", c.Heads[i], i, ch)
		}
	}
	checks := []struct {
		ok    bool
		key   string
		value any
	}{
		{c.ActFn == "silu", "act_fn", c.ActFn},
		{string(c.OnlyCrossAttention) == "" || string(c.OnlyCrossAttention) == "false" || string(c.OnlyCrossAttention) == "null", "only_cross_attention", string(c.OnlyCrossAttention)},
		{!c.DualCrossAttention, "dual_cross_attention", c.DualCrossAttention},
		{c.ClassEmbedType == nil, "class_embed_type", deref(c.ClassEmbedType)},
		{c.NumClassEmbeds == nil, "num_class_embeds", derefInt(c.NumClassEmbeds)},
		{c.EncoderHidDim == nil, "encoder_hid_dim", derefInt(c.EncoderHidDim)},
		{c.TimeEmbeddingType == "positional", "time_embedding_type", c.TimeEmbeddingType},
		{c.TimeEmbeddingDim == nil, "time_embedding_dim", derefInt(c.TimeEmbeddingDim)},
		{c.TimeEmbeddingActFn == nil, "time_embedding_act_fn", deref(c.TimeEmbeddingActFn)},
		{c.TimestepPostAct == nil, "timestep_post_act", deref(c.TimestepPostAct)},
		{c.ResnetTimeScaleShift == "default", "resnet_time_scale_shift", c.ResnetTimeScaleShift},
		{!c.ResnetSkipTimeAct, "resnet_skip_time_act", c.ResnetSkipTimeAct},
		{c.AttentionType == "default", "attention_type", c.AttentionType},
		{c.Dropout == 0, "dropout", c.Dropout},
		{c.ConvInKernel%2 == 1, "conv_in_kernel", c.ConvInKernel},
		{c.ConvOutKernel%2 == 1, "conv_out_kernel", c.ConvOutKernel},
		{c.DownsamplePadding == 0 || c.DownsamplePadding == 1, "downsample_padding", c.DownsamplePadding},
		{c.MidBlockScaleFactor == 1, "mid_block_scale_factor", c.MidBlockScaleFactor},
	}
	for _, ch := range checks {
		if !ch.ok {
			return c.errorf(ch.key, "value %v is not supported by golcm", ch.value)
		}
	}
	if c.AdditionEmbedType != nil {
		if *c.AdditionEmbedType != "text_time" {
			return c.errorf("addition_embed_type", "value %q is not supported by golcm (supported: null, text_time)", *c.AdditionEmbedType)
		}
		if c.AdditionTimeEmbedDim == nil || c.ProjectionClassEmbedsDim == nil {
			return c.errorf("addition_embed_type", "text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim")
		}
	}
	return nil
}

// TimeEmbedDim is the width of the time embedding (4 × block_out_channels[0]).
func (c *Config) TimeEmbedDim() int { return c.BlockOutChannels[0] * 4 }

// DownsampleFactor is how much the UNet shrinks its input (2 per downsampler).
func (c *Config) DownsampleFactor() int { return 1 << (len(c.BlockOutChannels) - 1) }

// TextTime reports whether the UNet takes SDXL's text_embeds and time_ids.
func (c *Config) TextTime() bool { return c.AdditionEmbedType != nil }

// TextEmbedsDim is the width of SDXL's pooled text_embeds input.
func (c *Config) TextEmbedsDim() int {
	if !c.TextTime() {
		return 0
	}
	return *c.ProjectionClassEmbedsDim - 6*(*c.AdditionTimeEmbedDim)
}

func deref(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

func derefInt(i *int) string {
	if i == nil {
		return "null"
	}
	return fmt.Sprint(*i)
}
