package nn

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
)

// Products with hand-written gradients.
//
// GoMLX differentiates DotGeneral with DotGenerals whose contracting axes
// come first, which the Go backend can only run after transposing both
// operands, the N×M attention probabilities and the 9×-wide im2col columns
// included. Transposes were about a fifth of a UNet backward pass. The
// functions here state each gradient as a product in the layout the
// backend runs directly, [G,M,K]·[G,K,N], transposing only the small
// operand (k, v, a weight) when one must move.

// dotWithGradients is DotGeneral(a, …, b, …) whose gradients are
// da(a, b, v) and db(a, b, v) for the adjoint v of the product.
//
// GoMLX sets custom gradients only on identities, so a and b pass through
// identities whose gradients are da and db, and the product through one
// that records v and the operands. The reverse pass meets the product's
// identity first (it is the newest node), so v is known when da and db run;
// GoMLX's own product gradients are then unused and dropped by dead-code
// elimination. The operands are read from the node the reverse pass hands
// over, which is the recomputed one under gradient checkpointing, so
// checkpointed blocks do not keep their forward activations alive.
func dotWithGradients(a *Node, aContract, aBatch []int, b *Node, bContract, bBatch []int,
	da, db func(a, b, v *Node) *Node) *Node {
	var opA, opB, adjoint *Node
	grad := func(f func(a, b, v *Node) *Node) func(_, _ *Node) *Node {
		return func(_, _ *Node) *Node {
			if adjoint == nil {
				panic(fmt.Errorf("nn: product operand differentiated before the product"))
			}
			return f(opA, opB, adjoint)
		}
	}
	a1 := IdentityWithCustomGradient(a, grad(da))
	b1 := IdentityWithCustomGradient(b, grad(db))
	y := DotGeneral(a1, aContract, aBatch, b1, bContract, bBatch)
	return IdentityWithCustomGradient(y, func(out, v *Node) *Node {
		ops := out.Inputs()[0].Inputs()
		opA, opB, adjoint = ops[0], ops[1], v
		return v
	})
}

// batchedMatMul is a[G,M,K]·b[G,K,N] → [G,M,N] with gradients
// ∂a = v·bᵀ and ∂b = aᵀ·v, each a [G,·,K]·[G,K,·] product after moving the
// other operand's last two axes. Use it where a and b are the small
// operands (attention's q and kᵀ).
func batchedMatMul(a, b *Node) *Node {
	return dotWithGradients(a, []int{2}, []int{0}, b, []int{1}, []int{0},
		func(_, b, v *Node) *Node { return matMul(v, swapLast(b)) },
		func(a, _, v *Node) *Node { return matMul(swapLast(a), v) })
}

// matMul is a[G,M,K]·b[G,K,N] → [G,M,N], no custom gradient.
func matMul(a, b *Node) *Node {
	return DotGeneral(a, []int{2}, []int{0}, b, []int{1}, []int{0})
}

// swapLast transposes the last two axes of a rank-3 tensor.
func swapLast(x *Node) *Node { return TransposeAllAxes(x, 0, 2, 1) }

// probsMatMul is attention's p[G,N,M]·v[G,M,d] → [G,N,d]. Its gradients
// never transpose the N×M probabilities: ∂p = o·vᵀ and ∂v = (oᵀ·p)ᵀ, where
// only o and v (N×d and M×d) move.
func probsMatMul(p, v *Node) *Node {
	return dotWithGradients(p, []int{2}, []int{0}, v, []int{1}, []int{0},
		func(_, v, o *Node) *Node { return matMul(o, swapLast(v)) },
		func(p, _, o *Node) *Node { return swapLast(matMul(swapLast(o), p)) })
}

// convMatMul is the im2col product w[B,O,K]·cols[B,K,P] → [B,O,P], w being
// one kernel broadcast over the batch. ∂cols = wᵀ·v transposes one copy of
// the kernel, not v; ∂w contracts v and cols on their last axes, a layout
// the backend packs without a transpose pass.
func convMatMul(w, cols *Node) *Node {
	return dotWithGradients(w, []int{2}, []int{0}, cols, []int{1}, []int{0},
		func(_, cols, v *Node) *Node { return DotGeneral(v, []int{2}, []int{0}, cols, []int{2}, []int{0}) },
		func(w, _, v *Node) *Node {
			d := w.Shape().Dimensions
			kernel := Reshape(Slice(w, AxisRange(0, 1)), d[1], d[2])
			wT := BroadcastToDims(Reshape(Transpose(kernel, 0, 1), 1, d[2], d[1]), d[0], d[2], d[1])
			return matMul(wT, v)
		})
}

// LinearNoBias is x[…,in]·wᵀ for a torch weight w[out,in], torch.nn.Linear
// without its bias. ∂x = v·w needs no transpose; ∂w = vᵀ·x moves v alone,
// where GoMLX's gradient moves v and x.
func LinearNoBias(x, w *Node) *Node {
	last := x.Rank() - 1
	return dotWithGradients(x, []int{last}, nil, w, []int{1}, nil,
		func(_, w, v *Node) *Node { return DotGeneral(v, []int{last}, nil, w, []int{0}, nil) },
		func(x, _, v *Node) *Node {
			out, in := v.Shape().Dimensions[last], x.Shape().Dimensions[last]
			return DotGeneral(Transpose(Reshape(v, -1, out), 0, 1), []int{1}, nil, Reshape(x, -1, in), []int{0}, nil)
		})
}
