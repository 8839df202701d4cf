package vae

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/models/nn"
)

// normEps is the GroupNorm eps diffusers' Encoder and Decoder hard-code for
// every resnet, the mid-block attention and conv_norm_out (1e-6, not torch's
// default 1e-5).
const normEps = 1e-6

type model struct {
	cfg *Config
}

// resnet is diffusers' ResnetBlock2D without a time embedding (temb_channels
// None): GroupNorm, SiLU, 3×3 conv, twice, plus a 1×1 conv_shortcut when the
// widths differ; output_scale_factor is 1 in the VAE.
func (m model) resnet(s nn.Scope, x *Node, outCh int) *Node {
	inCh := x.Shape().Dimensions[1]
	g := m.cfg.NormNumGroups
	h := nn.SiLU(nn.GroupNorm(s.In("norm1"), x, g, normEps))
	h = nn.Conv2d(s.In("conv1"), h, 1, nn.SamePadding(3))
	h = nn.SiLU(nn.GroupNorm(s.In("norm2"), h, g, normEps))
	h = nn.Conv2d(s.In("conv2"), h, 1, nn.SamePadding(3))
	if inCh != outCh {
		x = nn.Conv2d(s.In("conv_shortcut"), x, 1, [4]int{})
	}
	return Add(x, h)
}

// midBlock is UNetMidBlock2D as the VAE builds it: resnet, attention (unless
// mid_block_add_attention is false), resnet.
func (m model) midBlock(s nn.Scope, x *Node) *Node {
	ch := x.Shape().Dimensions[1]
	x = m.resnet(s.In("resnets", 0), x, ch)
	if m.cfg.MidBlockAddAttention {
		x = m.attention(s.In("attentions", 0), x)
	}
	return m.resnet(s.In("resnets", 1), x, ch)
}

// attention is the mid-block Attention over the H·W pixels as tokens:
// GroupNorm, to_q/to_k/to_v Linear over channels, softmax(q·kᵀ/√C)·v,
// to_out.0, then the residual. The Encoder and Decoder pass
// attention_head_dim = C, so heads = C / attention_head_dim = 1: one head as
// wide as the block. rescale_output_factor is 1.
func (m model) attention(s nn.Scope, x *Node) *Node {
	d := x.Shape().Dimensions
	B, C, H, W := d[0], d[1], d[2], d[3]
	h := nn.GroupNorm(s.In("group_norm"), x, m.cfg.NormNumGroups, normEps)
	tokens := TransposeAllAxes(Reshape(h, B, C, H*W), 0, 2, 1) // [B, HW, C]
	q := nn.Linear(s.In("to_q"), tokens)
	k := nn.Linear(s.In("to_k"), tokens)
	v := nn.Linear(s.In("to_v"), tokens)
	out := nn.Linear(s.In("to_out", 0), nn.Attention(s, q, k, v, 1))
	out = Reshape(TransposeAllAxes(out, 0, 2, 1), B, C, H, W)
	return Add(out, x)
}

// downsample is Downsample2D(use_conv=True, padding=0) as the Encoder builds
// it: pad right and bottom by one, then a stride-2 3×3 conv.
func downsample(s nn.Scope, x *Node) *Node {
	return nn.Conv2d(s.In("conv"), x, 2, [4]int{0, 1, 0, 1})
}

// upsample is Upsample2D(use_conv=True): nearest 2× then a 3×3 conv.
func upsample(s nn.Scope, x *Node) *Node {
	return nn.Conv2d(s.In("conv"), nn.UpsampleNearest2x(x), 1, nn.SamePadding(3))
}
