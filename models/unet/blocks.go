package unet

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/models/nn"
)

// transformerNormEps is the GroupNorm eps diffusers' Transformer2DModel
// hard-codes (1e-6), and layerNormEps its BasicTransformerBlock LayerNorms'.
const (
	transformerNormEps = 1e-6
	layerNormEps       = 1e-5
)

// checkpointed runs block on x, recomputing it in the backward pass when
// gradient checkpointing is on.
func checkpointed(s nn.Scope, x *Node, block func(x *Node) *Node) *Node {
	if !s.Params().Options().GradientCheckpointing {
		return block(x)
	}
	return block(x.Checkpoint()).StopCheckpoint()
}

// resnet is diffusers' ResnetBlock2D with the "default" time embedding
// (added after conv1) and a 1×1 conv_shortcut when the widths differ.
func (m *model) resnet(s nn.Scope, x *Node, outCh int) *Node {
	return checkpointed(s, x, func(x *Node) *Node {
		inCh := x.Shape().Dimensions[1]
		h := nn.SiLU(nn.GroupNorm(s.In("norm1"), x, m.cfg.NormNumGroups, m.cfg.NormEps))
		h = nn.Conv2d(s.In("conv1"), h, 1, nn.SamePadding(3))
		t := nn.Linear(s.In("time_emb_proj"), nn.SiLU(m.temb))
		h = Add(h, Reshape(t, t.Shape().Dimensions[0], outCh, 1, 1))
		h = nn.SiLU(nn.GroupNorm(s.In("norm2"), h, m.cfg.NormNumGroups, m.cfg.NormEps))
		h = nn.Conv2d(s.In("conv2"), h, 1, nn.SamePadding(3))
		if inCh != outCh {
			x = nn.Conv2d(s.In("conv_shortcut"), x, 1, [4]int{})
		}
		out := Add(x, h)
		if m.cfg.ResnetOutScaleFactor != 1 {
			out = DivScalar(out, m.cfg.ResnetOutScaleFactor)
		}
		return out
	})
}

// transformer is diffusers' Transformer2DModel for continuous input: GroupNorm,
// proj_in (1×1 conv, or linear when use_linear_projection), `layers`
// BasicTransformerBlocks, proj_out, residual.
func (m *model) transformer(s nn.Scope, x *Node, heads, layers int) *Node {
	return checkpointed(s, x, func(x *Node) *Node {
		d := x.Shape().Dimensions
		B, H, W := d[0], d[2], d[3]
		h := nn.GroupNorm(s.In("norm"), x, m.cfg.NormNumGroups, transformerNormEps)
		toTokens := func(h *Node) *Node {
			c := h.Shape().Dimensions[1]
			return Reshape(TransposeAllAxes(h, 0, 2, 3, 1), B, H*W, c)
		}
		if m.cfg.UseLinearProjection {
			h = nn.Linear(s.In("proj_in"), toTokens(h))
		} else {
			h = toTokens(nn.Conv2d(s.In("proj_in"), h, 1, [4]int{}))
		}
		for k := range layers {
			h = m.basicTransformerBlock(s.In("transformer_blocks", k), h, heads)
		}
		toImage := func(h *Node) *Node {
			c := h.Shape().Dimensions[2]
			return TransposeAllAxes(Reshape(h, B, H, W, c), 0, 3, 1, 2)
		}
		if m.cfg.UseLinearProjection {
			h = toImage(nn.Linear(s.In("proj_out"), h))
		} else {
			h = nn.Conv2d(s.In("proj_out"), toImage(h), 1, [4]int{})
		}
		return Add(h, x)
	})
}

// basicTransformerBlock: self-attention, cross-attention on the text context,
// and a GEGLU feed-forward, each pre-LayerNorm with a residual.
func (m *model) basicTransformerBlock(s nn.Scope, h *Node, heads int) *Node {
	n := nn.LayerNorm(s.In("norm1"), h, layerNormEps)
	h = Add(h, attention(s.In("attn1"), n, n, heads))
	n = nn.LayerNorm(s.In("norm2"), h, layerNormEps)
	h = Add(h, attention(s.In("attn2"), n, m.context, heads))
	n = nn.LayerNorm(s.In("norm3"), h, layerNormEps)
	return Add(h, geglu(s.In("ff"), n))
}

// attention is diffusers' Attention with its default processor: q from x,
// k and v from context, output projection to_out.0.
func attention(s nn.Scope, x, context *Node, heads int) *Node {
	q := nn.Linear(s.In("to_q"), x)
	k := nn.Linear(s.In("to_k"), context)
	v := nn.Linear(s.In("to_v"), context)
	return nn.Linear(s.In("to_out", 0), nn.Attention(s, q, k, v, heads))
}

// geglu is FeedForward(activation_fn="geglu"): proj to 2×inner, the first half
// times GELU of the second, then back to the width.
func geglu(s nn.Scope, x *Node) *Node {
	p := nn.Linear(s.In("net", 0, "proj"), x)
	halves := nn.SplitLastAxis(s, p, 2)
	return nn.Linear(s.In("net", 2), Mul(halves[0], nn.GELU(halves[1])))
}

// downsample is Downsample2D(use_conv=True): a stride-2 3×3 conv; padding 0
// pads right and bottom by one first, as diffusers does.
func (m *model) downsample(s nn.Scope, x *Node) *Node {
	pad := [4]int{1, 1, 1, 1}
	if m.cfg.DownsamplePadding == 0 {
		pad = [4]int{0, 1, 0, 1}
	}
	return nn.Conv2d(s.In("conv"), x, 2, pad)
}

// upsample is Upsample2D(use_conv=True): nearest 2× then a 3×3 conv.
func (m *model) upsample(s nn.Scope, x *Node) *Node {
	return nn.Conv2d(s.In("conv"), nn.UpsampleNearest2x(x), 1, nn.SamePadding(3))
}
