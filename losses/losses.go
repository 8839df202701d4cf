// Package losses holds the distillation losses as GoMLX graph functions:
// L2 and pseudo-Huber, each averaged over every element, as diffusers'
// train_lcm_distill_* scripts compute them. Depends on GoMLX only.
package losses

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
)

// Kind names a loss: "l2" or "huber".
type Kind string

const (
	L2    Kind = "l2"
	Huber Kind = "huber"
)

// Parse checks a loss name.
func Parse(s string) (Kind, error) {
	switch Kind(s) {
	case L2, Huber:
		return Kind(s), nil
	}
	return "", fmt.Errorf("loss %q is not one of l2, huber", s)
}

// Loss returns the scalar loss between pred and target. c is the pseudo-Huber
// parameter (unused for L2).
func Loss(kind Kind, pred, target *Node, c float64) *Node {
	switch kind {
	case L2:
		return MeanSquared(pred, target)
	case Huber:
		return PseudoHuber(pred, target, c)
	}
	panic(fmt.Errorf("unknown loss %q", kind))
}

// MeanSquared is mean((pred - target)²), F.mse_loss with mean reduction.
func MeanSquared(pred, target *Node) *Node {
	return ReduceAllMean(Square(Sub(pred, target)))
}

// PseudoHuber is mean(sqrt((pred - target)² + c²) - c): quadratic near zero,
// linear far away, as the LCM scripts' huber loss.
func PseudoHuber(pred, target *Node, c float64) *Node {
	d := Square(Sub(pred, target))
	return ReduceAllMean(AddScalar(Sqrt(AddScalar(d, c*c)), -c))
}
