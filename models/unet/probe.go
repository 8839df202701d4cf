package unet

import (
	"math/rand/v2"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/nn"
)

// RandomInputs are standard normal latents [batch, in_channels, size, size]
// and text states [batch, 77, cross_attention_dim], with timesteps spread
// over the schedule, for benchmarks and tests that need no real data.
func RandomInputs(rng *rand.Rand, cfg *Config, batch, size int) HostInputs {
	ts := make([]int64, batch)
	for i := range ts {
		ts[i] = int64(999 - (999*i)/max(batch, 2))
	}
	return HostInputs{
		Sample:    nn.NormalTensor(rng, batch, cfg.InChannels, size, size),
		Timesteps: tensors.FromFlatDataAndDimensions(ts, batch),
		Context:   nn.NormalTensor(rng, batch, 77, cfg.CrossDims[0]),
	}
}

// CompileProbe compiles the UNet with the loss mean(out²) as a probe of its
// cost and gradients: the program takes sample, timesteps and context and
// returns the loss and, when grads is set, its gradient with respect to
// every weight in weights.Names() order.
func CompileProbe(b compute.Backend, cfg *Config, weights *nn.Weights, opts nn.Options, grads bool) (*nn.Program, error) {
	return nn.Compile(b, []*nn.Weights{weights}, opts, func(g []*nn.Params, in []*Node) []*Node {
		params := g[0]
		if !grads {
			params = params.ForwardOnly()
		}
		root := params.Root("")
		out := Forward(root, cfg, Inputs{Sample: in[0], Timesteps: in[1], Context: in[2]})
		loss := ReduceAllMean(Square(out))
		if !grads {
			return []*Node{loss}
		}
		nodes := make([]*Node, 0, weights.Len())
		for _, name := range weights.Names() {
			nodes = append(nodes, root.Param(name))
		}
		return append([]*Node{loss}, Gradient(loss, nodes...)...)
	})
}
