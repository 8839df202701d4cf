package lcm

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
)

// Denoiser turns any network predicting epsilon, v or the sample into the
// consistency function f(z, t) = c_skip(t)·z + c_out(t)·x0(pred), as
// k-diffusion's Denoiser wraps a model with its c_skip/c_out
// preconditioning. The student and target passes of the distillation step
// are both one.
type Denoiser struct {
	Net        func(z, t *Node) *Node // the network's raw prediction at (z, t)
	Prediction PredictionType
}

// Consistency returns f(z, t) and the network's raw output, with the
// per-sample a(t), s(t) and boundary scalings at t.
func (d Denoiser) Consistency(z, t, alpha, sigma, cSkip, cOut *Node) (f, out *Node) {
	out = d.Net(z, t)
	x0, _ := GraphX0AndEps(out, z, alpha, sigma, d.Prediction)
	return GraphConsistency(z, x0, cSkip, cOut), out
}
