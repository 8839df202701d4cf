// Package unet is diffusers' UNet2DConditionModel in GoMLX: the SD 1.x/2.x
// and SDXL denoiser, with the optional guidance-scale projection
// (time_cond_proj_dim) that LCM students carry.
//
// The architecture comes entirely from config.json (see Config); weights are
// addressed by diffusers' state-dict names through an nn.Scope. Depends on
// models/nn, models/safetensors and GoMLX.
package unet

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/models/nn"
)

// Inputs are the UNet's graph inputs. Sample is [B, in_channels, H, W];
// Timesteps [B] (integer or float); Context the text encoder states
// [B, L, cross_attention_dim]. TimestepCond [B, time_cond_proj_dim] is the
// guidance-scale embedding of an LCM student (nil otherwise). TextEmbeds
// [B, D] and TimeIDs [B, 6] are SDXL's added conditions.
type Inputs struct {
	Sample, Timesteps, Context *Node
	TimestepCond               *Node
	TextEmbeds, TimeIDs        *Node
}

type model struct {
	cfg     *Config
	temb    *Node
	context *Node
}

// Forward builds the UNet's output (the model prediction, shaped like
// Sample). It panics on shape errors and missing weights; callers turn
// panics into errors (backend.Catch).
func Forward(s nn.Scope, cfg *Config, in Inputs) *Node {
	d := in.Sample.Shape().Dimensions
	if len(d) != 4 || d[1] != cfg.InChannels {
		panic(fmt.Errorf("unet: sample shape %v, want [B, %d, H, W]", d, cfg.InChannels))
	}
	f := cfg.DownsampleFactor()
	if d[2]%f != 0 || d[3]%f != 0 {
		panic(fmt.Errorf("unet: sample %dx%d is not a multiple of %d (the UNet downsamples %d times)", d[2], d[3], f, len(cfg.BlockOutChannels)-1))
	}
	m := &model{cfg: cfg, context: in.Context}
	m.temb = m.timeEmbedding(s, in)
	x := in.Sample
	if cfg.CenterInputSample {
		x = AddScalar(MulScalar(x, 2), -1)
	}
	x = nn.Conv2d(s.In("conv_in"), x, 1, nn.SamePadding(cfg.ConvInKernel))

	// Down path: every resnet (+attention) output and every downsampler
	// output is kept for the skip connections.
	skips := []*Node{x}
	for i, typ := range cfg.DownBlockTypes {
		b := s.In("down_blocks", i)
		for j := range cfg.Layers[i] {
			x = m.resnet(b.In("resnets", j), x, cfg.BlockOutChannels[i])
			if typ == "CrossAttnDownBlock2D" {
				x = m.transformer(b.In("attentions", j), x, cfg.Heads[i], cfg.Transformer[i])
			}
			skips = append(skips, x)
		}
		if i < len(cfg.DownBlockTypes)-1 {
			x = m.downsample(b.In("downsamplers", 0), x)
			skips = append(skips, x)
		}
	}

	// Mid block: resnet, (attention, resnet).
	last := len(cfg.BlockOutChannels) - 1
	mid := s.In("mid_block")
	x = m.resnet(mid.In("resnets", 0), x, cfg.BlockOutChannels[last])
	x = m.transformer(mid.In("attentions", 0), x, cfg.Heads[last], cfg.Transformer[last])
	x = m.resnet(mid.In("resnets", 1), x, cfg.BlockOutChannels[last])

	// Up path, levels reversed; each resnet takes a skip concatenated on
	// the channel axis, popped from the end.
	for i, typ := range cfg.UpBlockTypes {
		level := last - i
		b := s.In("up_blocks", i)
		for j := range cfg.Layers[level] + 1 {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			x = Concatenate([]*Node{x, skip}, 1)
			x = m.resnet(b.In("resnets", j), x, cfg.BlockOutChannels[level])
			if typ == "CrossAttnUpBlock2D" {
				x = m.transformer(b.In("attentions", j), x, cfg.Heads[level], cfg.ReverseTr[i])
			}
		}
		if i < len(cfg.UpBlockTypes)-1 {
			x = m.upsample(b.In("upsamplers", 0), x)
		}
	}

	x = nn.SiLU(nn.GroupNorm(s.In("conv_norm_out"), x, cfg.NormNumGroups, cfg.NormEps))
	return nn.Conv2d(s.In("conv_out"), x, 1, nn.SamePadding(cfg.ConvOutKernel))
}

// timeEmbedding is time_proj + time_embedding (with cond_proj of the
// guidance embedding added before linear_1) plus SDXL's text_time
// add_embedding.
func (m *model) timeEmbedding(s nn.Scope, in Inputs) *Node {
	cfg := m.cfg
	B := in.Sample.Shape().Dimensions[0]
	t := in.Timesteps
	if t.Rank() == 0 {
		t = BroadcastToDims(Reshape(t, 1), B)
	}
	// Computed in float32 like diffusers, then cast to the sample's dtype.
	dtype := in.Sample.DType()
	emb := ConvertDType(nn.SinusoidalEmbedding(t, cfg.BlockOutChannels[0], cfg.FlipSinToCos, cfg.FreqShift), dtype)
	te := s.In("time_embedding")
	if in.TimestepCond != nil {
		if cfg.TimeCondProjDim == nil {
			panic(fmt.Errorf("unet: a timestep_cond was given but the config has no time_cond_proj_dim"))
		}
		emb = Add(emb, nn.Linear(te.In("cond_proj"), in.TimestepCond))
	}
	emb = nn.Linear(te.In("linear_2"), nn.SiLU(nn.Linear(te.In("linear_1"), emb)))
	if cfg.TextTime() {
		if in.TextEmbeds == nil || in.TimeIDs == nil {
			panic(fmt.Errorf("unet: addition_embed_type text_time needs text_embeds and time_ids"))
		}
		ids := Reshape(in.TimeIDs, -1)
		tid := nn.SinusoidalEmbedding(ids, *cfg.AdditionTimeEmbedDim, cfg.FlipSinToCos, cfg.FreqShift)
		tid = ConvertDType(Reshape(tid, B, -1), dtype)
		add := Concatenate([]*Node{in.TextEmbeds, tid}, 1)
		ae := s.In("add_embedding")
		emb = Add(emb, nn.Linear(ae.In("linear_2"), nn.SiLU(nn.Linear(ae.In("linear_1"), add))))
	}
	return emb
}
