package unet

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/nn"
)

// HostInputs are Inputs as tensors, for running the UNet outside a larger
// graph. Optional fields may be nil.
type HostInputs struct {
	Sample, Timesteps, Context *tensors.Tensor
	TimestepCond               *tensors.Tensor
	TextEmbeds, TimeIDs        *tensors.Tensor
}

// Runner runs a UNet forward pass as its own compiled program.
type Runner struct {
	backend  compute.Backend
	model    *Model
	opts     nn.Options
	programs map[[3]bool]*nn.Program
}

// NewRunner prepares forward passes of m on backend b.
func NewRunner(b compute.Backend, m *Model, opts nn.Options) *Runner {
	return &Runner{backend: b, model: m, opts: opts, programs: map[[3]bool]*nn.Program{}}
}

// Forward computes the UNet output for the inputs.
func (r *Runner) Forward(in HostInputs) (*tensors.Tensor, error) {
	key := [3]bool{in.TimestepCond != nil, in.TextEmbeds != nil, in.TimeIDs != nil}
	prog, ok := r.programs[key]
	if !ok {
		var err error
		prog, err = nn.Compile(r.backend, []*nn.Weights{r.model.Weights}, r.opts, func(groups []*nn.Params, xs []*Node) []*Node {
			gin := Inputs{Sample: xs[0], Timesteps: xs[1], Context: xs[2]}
			rest := xs[3:]
			take := func(present bool) *Node {
				if !present {
					return nil
				}
				n := rest[0]
				rest = rest[1:]
				return n
			}
			gin.TimestepCond = take(key[0])
			gin.TextEmbeds = take(key[1])
			gin.TimeIDs = take(key[2])
			return []*Node{Forward(groups[0].ForwardOnly().Root(""), r.model.Config, gin)}
		})
		if err != nil {
			return nil, err
		}
		r.programs[key] = prog
	}
	args := []*tensors.Tensor{in.Sample, in.Timesteps, in.Context}
	for _, t := range []*tensors.Tensor{in.TimestepCond, in.TextEmbeds, in.TimeIDs} {
		if t != nil {
			args = append(args, t)
		}
	}
	outs, err := prog.Run(args...)
	if err != nil {
		return nil, fmt.Errorf("unet forward: %w", err)
	}
	return outs[0], nil
}
