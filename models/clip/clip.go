// Package clip is transformers' CLIPTextModel and CLIPTextModelWithProjection
// in GoMLX: the text encoders of Stable Diffusion (one) and SD-XL (two), and
// the conditioning the UNet takes from them.
//
// The architecture comes from a text_encoder*/config.json (see Config);
// weights are addressed by their transformers state-dict names
// ("text_model.encoder.layers.0.self_attn.q_proj.weight") through an
// nn.Scope. Forward builds the encoder into any graph; Runner and
// Conditioner run it on host token ids, which come from models/tokenizer as
// int64 [B, 77]. Depends on models/nn, models/hub, models/safetensors and
// GoMLX.
package clip

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/models/nn"
)

// Outputs are what CLIPTextModel(output_hidden_states=True) returns, plus
// CLIPTextModelWithProjection's text_embeds.
type Outputs struct {
	// LastHiddenState [B, L, hidden_size] is the last layer's output after
	// final_layer_norm: SD 1.x/2.x's prompt_embeds.
	LastHiddenState *Node
	// HiddenStates has num_hidden_layers+1 entries [B, L, hidden_size]: the
	// embeddings, then each layer's output, none with final_layer_norm.
	HiddenStates []*Node
	// Pooled [B, hidden_size] is LastHiddenState at the end-of-text token.
	Pooled *Node
	// TextEmbeds [B, projection_dim] is text_projection(Pooled), only for
	// CLIPTextModelWithProjection (nil otherwise).
	TextEmbeds *Node
}

// Penultimate is hidden_states[-2], the output of the second-to-last layer
// without final_layer_norm: what SD-XL (and "clip skip") conditions on.
func (o Outputs) Penultimate() *Node { return o.HiddenStates[len(o.HiddenStates)-2] }

// Forward builds the text encoder on token ids [B, L] (an integer dtype,
// L <= max_position_embeddings). s is the scope at the root of the encoder's
// weights. It panics on shape errors and missing weights (Runner turns them
// into errors). Only the forward pass is meant to be used: the embedding
// lookup is a Gather, and the text encoders are never trained here.
func Forward(s nn.Scope, cfg *Config, ids *Node) Outputs {
	d := ids.Shape().Dimensions
	if len(d) != 2 || !ids.DType().IsInt() || d[1] > cfg.MaxPositionEmbeddings {
		panic(fmt.Errorf("clip: token ids shape %s, want an integer [B, L] with L <= %d",
			ids.Shape(), cfg.MaxPositionEmbeddings))
	}
	L := d[1]
	tm := s.In("text_model")
	emb := tm.In("embeddings")
	tok := Gather(emb.In("token_embedding").Param("weight"), InsertAxes(ids, -1)) // [B, L, D]
	pos := Slice(emb.In("position_embedding").Param("weight"), AxisRange(0, L))   // [L, D]
	h := Add(tok, InsertAxes(pos, 0))

	// The mask is added to float32 scores (selfAttention), whatever h's dtype.
	mask := causalMask(h.Graph(), dtypes.Float32, L)
	out := Outputs{HiddenStates: []*Node{h}}
	for i := range cfg.NumHiddenLayers {
		h = encoderLayer(tm.In("encoder", "layers", i), cfg, h, mask)
		out.HiddenStates = append(out.HiddenStates, h)
	}
	out.LastHiddenState = nn.LayerNorm(tm.In("final_layer_norm"), h, cfg.LayerNormEps)
	out.Pooled = pooled(cfg, ids, out.LastHiddenState)
	if cfg.WithProjection {
		out.TextEmbeds = nn.Linear(s.In("text_projection"), out.Pooled)
	}
	return out
}

// causalMask is transformers' _create_4d_causal_attention_mask as [L, L]:
// 0 where a query may attend (key position <= query position) and the
// dtype's lowest finite value (torch.finfo(dtype).min) on future positions.
// Added to the scores, it makes their softmax weights exactly 0.
func causalMask(g *Graph, dtype dtypes.DType, L int) *Node {
	idx := shapes.Make(dtypes.Int32, L, L)
	future := GreaterThan(Iota(g, idx, 1), Iota(g, idx, 0))
	return MulScalar(ConvertDType(future, dtype), -math.MaxFloat32)
}

// encoderLayer is CLIPEncoderLayer: pre-LayerNorm self-attention and MLP,
// each with a residual.
func encoderLayer(s nn.Scope, cfg *Config, h, mask *Node) *Node {
	x := nn.LayerNorm(s.In("layer_norm1"), h, cfg.LayerNormEps)
	h = Add(h, selfAttention(s.In("self_attn"), cfg, x, mask))
	x = nn.LayerNorm(s.In("layer_norm2"), h, cfg.LayerNormEps)
	x = nn.Linear(s.In("mlp", "fc1"), x)
	if cfg.HiddenAct == "quick_gelu" {
		x = nn.QuickGELU(x)
	} else {
		x = nn.GELU(x)
	}
	return Add(h, nn.Linear(s.In("mlp", "fc2"), x))
}

// selfAttention is CLIPAttention with the causal mask: q is scaled by
// head_dim^-0.5 before the product (as transformers does), the mask is added
// to the scores, softmax over keys, then out_proj.
func selfAttention(s nn.Scope, cfg *Config, x, mask *Node) *Node {
	d := x.Shape().Dimensions
	B, L, D := d[0], d[1], d[2]
	H, hd := cfg.NumAttentionHeads, cfg.HeadDim()
	q := MulScalar(nn.Linear(s.In("q_proj"), x), 1/math.Sqrt(float64(hd)))
	k := nn.Linear(s.In("k_proj"), x)
	v := nn.Linear(s.In("v_proj"), x)
	q, k, v = Reshape(q, B, L, H, hd), Reshape(k, B, L, H, hd), Reshape(v, B, L, H, hd)
	// Mixed precision: the masked softmax runs in float32 (as torch's
	// autocast runs softmax), its probabilities multiply v in v's dtype.
	scores := Einsum("bnhd,bmhd->bhnm", q, k)
	if scores.DType() != dtypes.Float32 {
		scores = ConvertDType(scores, dtypes.Float32)
	}
	probs := Softmax(Add(scores, Reshape(mask, 1, 1, L, L)), -1)
	if probs.DType() != v.DType() {
		probs = ConvertDType(probs, v.DType())
	}
	out := Reshape(Einsum("bhnm,bmhd->bnhd", probs, v), B, L, D)
	return nn.Linear(s.In("out_proj"), out)
}

// pooled picks each row's end-of-text state from last [B, L, D]. With the
// legacy eos_token_id == 2 the position is argmax(input_ids) (the eos token
// has the largest id in CLIP's vocabulary); otherwise it is the first
// position equal to eos_token_id, or 0 when there is none (torch's argmax
// of an all-zero row). Ties go to the first position, as torch.argmax's do:
// SD pads with eos, so the legacy rule sees many equal maxima. The position
// is found with integer index math and applied as a one-hot matmul, which
// copies the row exactly.
func pooled(cfg *Config, ids, last *Node) *Node {
	g := ids.Graph()
	d := ids.Shape().Dimensions
	B, L := d[0], d[1]
	target := Scalar(g, ids.DType(), cfg.EOSTokenID)
	if cfg.EOSTokenID == 2 {
		target = ReduceAndKeep(ids, ReduceMax, 1)
	}
	hit := Equal(ids, BroadcastToDims(target, B, L))
	pos := Iota(g, shapes.Make(dtypes.Int32, B, L), 1)
	notFound := Scalar(g, dtypes.Int32, L)
	first := ReduceMin(Where(hit, pos, notFound), 1) // [B]
	first = Where(Equal(first, BroadcastToDims(notFound, B)), Scalar(g, dtypes.Int32, 0), first)
	onehot := ConvertDType(Equal(pos, BroadcastToDims(InsertAxes(first, -1), B, L)), last.DType())
	return Einsum("bl,bld->bd", onehot, last)
}
