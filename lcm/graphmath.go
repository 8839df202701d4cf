package lcm

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
)

// perSample reshapes a [B] coefficient to [B,1,1,1] to scale [B,C,H,W].
func perSample(c *Node, like *Node) *Node {
	dims := make([]int, like.Rank())
	for i := range dims {
		dims[i] = 1
	}
	dims[0] = c.Shape().Dimensions[0]
	return Reshape(c, dims...)
}

// GraphX0AndEps is the graph twin of PredictedX0 and PredictedEps: the clean
// sample and the noise a model output o implies for input z with per-sample
// signal and noise scales alpha, sigma [B].
func GraphX0AndEps(o, z, alpha, sigma *Node, pt PredictionType) (x0, eps *Node) {
	a, s := perSample(alpha, z), perSample(sigma, z)
	switch pt {
	case PredictEpsilon:
		return Div(Sub(z, Mul(s, o)), a), o
	case PredictSample:
		return o, Div(Sub(z, Mul(a, o)), s)
	case PredictV:
		return Sub(Mul(a, z), Mul(s, o)), Add(Mul(a, o), Mul(s, z))
	}
	panic(fmt.Errorf("prediction type %q is not supported (want epsilon, sample or v_prediction)", pt))
}

// GraphConsistency is the boundary-condition output c_skip·z + c_out·x0.
func GraphConsistency(z, x0, cSkip, cOut *Node) *Node {
	return Add(Mul(perSample(cSkip, z), z), Mul(perSample(cOut, z), x0))
}

// GraphGuidance is the LCM-paper guidance cond + w·(cond - uncond).
func GraphGuidance(cond, uncond, w *Node) *Node {
	return Add(cond, Mul(perSample(w, cond), Sub(cond, uncond)))
}

// GraphWeightedSum is a·x + b·y with per-sample a, b: forward noising and the
// DDIM step.
func GraphWeightedSum(a, x, b, y *Node) *Node {
	return Add(Mul(perSample(a, x), x), Mul(perSample(b, y), y))
}
