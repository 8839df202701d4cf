package clip

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/nn"
)

// Conditioning is what the UNet takes from the text encoders.
type Conditioning struct {
	// Context is encoder_hidden_states [B, L, cross_attention_dim].
	Context *Node
	// TextEmbeds is SD-XL's pooled text_embeds [B, projection_dim] (the
	// UNet's added condition); nil for SD 1.x/2.x.
	TextEmbeds *Node
}

// SDConditioning is SD 1.x/2.x's encode_prompt: the last hidden state of
// its one encoder.
func SDConditioning(o Outputs) Conditioning {
	return Conditioning{Context: o.LastHiddenState}
}

// SDXLConditioning is StableDiffusionXLPipeline.encode_prompt: the
// penultimate states of encoder 1 and encoder 2 concatenated on the feature
// axis (in that order), and encoder 2's projected pooled output.
func SDXLConditioning(o1, o2 Outputs) Conditioning {
	if o2.TextEmbeds == nil {
		panic(fmt.Errorf("clip: SD-XL's second text encoder must be a %s", TextModelWithProjection))
	}
	return Conditioning{
		Context:    Concatenate([]*Node{o1.Penultimate(), o2.Penultimate()}, -1),
		TextEmbeds: o2.TextEmbeds,
	}
}

// HostConditioning is a Conditioning as host tensors.
type HostConditioning struct {
	Context    *tensors.Tensor
	TextEmbeds *tensors.Tensor // nil for SD 1.x/2.x
}

// Conditioner turns token ids into the UNet's conditioning in one compiled
// program over one text encoder (SD 1.x/2.x) or two (SD-XL).
type Conditioner struct {
	encoders []*Model
	prog     *nn.Program
}

// NewConditioner prepares the conditioning of SD 1.x/2.x (one encoder) or
// SD-XL (text_encoder, then text_encoder_2 with projection).
func NewConditioner(b compute.Backend, opts nn.Options, encoders ...*Model) (*Conditioner, error) {
	switch len(encoders) {
	case 1:
	case 2:
		if !encoders[1].Config.WithProjection {
			return nil, fmt.Errorf("clip conditioner: the second text encoder (%s) must be a %s",
				encoders[1].Config.Path, TextModelWithProjection)
		}
	default:
		return nil, fmt.Errorf("clip conditioner: %d text encoders, want 1 (SD) or 2 (SD-XL)", len(encoders))
	}
	groups := make([]*nn.Weights, len(encoders))
	for i, m := range encoders {
		groups[i] = m.Weights
	}
	prog, err := nn.Compile(b, groups, opts, func(ps []*nn.Params, ids []*Node) []*Node {
		if len(encoders) == 1 {
			return []*Node{SDConditioning(Forward(ps[0].Root(""), encoders[0].Config, ids[0])).Context}
		}
		o1 := Forward(ps[0].Root(""), encoders[0].Config, ids[0])
		o2 := Forward(ps[1].Root(""), encoders[1].Config, ids[1])
		c := SDXLConditioning(o1, o2)
		return []*Node{c.Context, c.TextEmbeds}
	})
	if err != nil {
		return nil, fmt.Errorf("clip conditioner: %w", err)
	}
	return &Conditioner{encoders: encoders, prog: prog}, nil
}

// Encode computes the conditioning from token ids [B, L] (int64), one
// tensor per encoder: SD-XL's two tokenizers pad differently, so their ids
// differ.
func (c *Conditioner) Encode(ids ...*tensors.Tensor) (*HostConditioning, error) {
	if len(ids) != len(c.encoders) {
		return nil, fmt.Errorf("clip conditioner: %d id tensors for %d text encoders", len(ids), len(c.encoders))
	}
	outs, err := c.prog.Run(ids...)
	if err != nil {
		return nil, fmt.Errorf("clip conditioner: %w", err)
	}
	h := &HostConditioning{Context: outs[0]}
	if len(outs) > 1 {
		h.TextEmbeds = outs[1]
	}
	return h, nil
}

// ContextDim is the width of Context: hidden_size of the one encoder, or
// the sum of both for SD-XL.
func (c *Conditioner) ContextDim() int {
	n := 0
	for _, m := range c.encoders {
		n += m.Config.HiddenSize
	}
	return n
}

// TextEmbedsDim is the width of TextEmbeds (0 for SD 1.x/2.x).
func (c *Conditioner) TextEmbedsDim() int {
	if len(c.encoders) < 2 {
		return 0
	}
	return c.encoders[1].Config.ProjectionDim
}

// Zeros is SD-XL's unconditional (negative) conditioning for a batch of
// seqLen-token prompts: all zeros, as StableDiffusionXLPipeline gives for an
// empty negative prompt under force_zeros_for_empty_prompt and as the SD-XL
// distillation script hard-codes. SD 1.x/2.x encode the empty prompt instead.
func (c *Conditioner) Zeros(batch, seqLen int) *HostConditioning {
	return ZeroConditioning(batch, seqLen, c.ContextDim(), c.TextEmbedsDim())
}

// ZeroConditioning is an all-zero conditioning: Context [batch, seqLen,
// contextDim] and, when textEmbedsDim > 0, TextEmbeds [batch, textEmbedsDim].
func ZeroConditioning(batch, seqLen, contextDim, textEmbedsDim int) *HostConditioning {
	h := &HostConditioning{
		Context: tensors.FromFlatDataAndDimensions(make([]float32, batch*seqLen*contextDim), batch, seqLen, contextDim),
	}
	if textEmbedsDim > 0 {
		h.TextEmbeds = tensors.FromFlatDataAndDimensions(make([]float32, batch*textEmbedsDim), batch, textEmbedsDim)
	}
	return h
}

// Finalize frees the compiled program.
func (c *Conditioner) Finalize() { c.prog.Finalize() }

// TimeIDs is one row of SD-XL's add_time_ids (the pipeline's
// _get_add_time_ids): original size, crop top-left, target size, as float32
// [orig_h, orig_w, crop_top, crop_left, target_h, target_w].
func TimeIDs(origH, origW, cropTop, cropLeft, targetH, targetW int) []float32 {
	return []float32{float32(origH), float32(origW), float32(cropTop), float32(cropLeft), float32(targetH), float32(targetW)}
}
