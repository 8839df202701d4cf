package clip

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/nn"
)

// HostOutputs are Outputs as host tensors.
type HostOutputs struct {
	LastHiddenState *tensors.Tensor
	HiddenStates    []*tensors.Tensor // embeddings, then every layer's output
	Pooled          *tensors.Tensor
	TextEmbeds      *tensors.Tensor // nil unless CLIPTextModelWithProjection
}

// Penultimate is hidden_states[-2] (see Outputs.Penultimate).
func (o *HostOutputs) Penultimate() *tensors.Tensor { return o.HiddenStates[len(o.HiddenStates)-2] }

// Runner runs one text encoder as its own compiled program and returns all
// of its outputs.
type Runner struct {
	backend compute.Backend
	model   *Model
	opts    nn.Options
	prog    *nn.Program
}

// NewRunner prepares forward passes of m on backend b.
func NewRunner(b compute.Backend, m *Model, opts nn.Options) *Runner {
	return &Runner{backend: b, model: m, opts: opts}
}

// Encode runs the encoder on token ids [B, L] (int64, as the tokenizer
// gives them).
func (r *Runner) Encode(ids *tensors.Tensor) (*HostOutputs, error) {
	cfg := r.model.Config
	if r.prog == nil {
		prog, err := nn.Compile(r.backend, []*nn.Weights{r.model.Weights}, r.opts, func(groups []*nn.Params, xs []*Node) []*Node {
			o := Forward(groups[0].Root(""), cfg, xs[0])
			outs := append([]*Node{o.LastHiddenState, o.Pooled}, o.HiddenStates...)
			if o.TextEmbeds != nil {
				outs = append(outs, o.TextEmbeds)
			}
			return outs
		})
		if err != nil {
			return nil, fmt.Errorf("clip: %w", err)
		}
		r.prog = prog
	}
	outs, err := r.prog.Run(ids)
	if err != nil {
		return nil, fmt.Errorf("clip encode: %w", err)
	}
	n := cfg.NumHiddenLayers + 1
	o := &HostOutputs{LastHiddenState: outs[0], Pooled: outs[1], HiddenStates: outs[2 : 2+n]}
	if cfg.WithProjection {
		o.TextEmbeds = outs[2+n]
	}
	return o, nil
}

// Finalize frees the compiled program.
func (r *Runner) Finalize() {
	if r.prog != nil {
		r.prog.Finalize()
		r.prog = nil
	}
}
