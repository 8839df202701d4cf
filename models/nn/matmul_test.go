package nn

import (
	"fmt"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
)

// TestProductGradientsMatchAutodiff: each product with hand-written
// gradients has GoMLX's own DotGeneral gradients, to float32 rounding, for
// operand shapes that reach both of the backend's matmul kernels (small and
// large).
func TestProductGradientsMatchAutodiff(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	type product struct {
		name         string
		aDims, bDims []int
		custom       func(a, b *Node) *Node
		plain        func(a, b *Node) *Node
	}
	batched := func(a, b *Node) *Node { return DotGeneral(a, []int{2}, []int{0}, b, []int{1}, []int{0}) }
	var cases []product
	// The second size of each puts the product over the backend's
	// small-kernel threshold (4Mi multiply-adds per batch entry).
	for _, sz := range []struct{ n, d, o int }{{5, 8, 6}, {128, 256, 64}} {
		n, d := sz.n, sz.d
		cases = append(cases,
			product{"q·kT", []int{3, n, d}, []int{3, d, n + 1}, batchedMatMul, batched},
			product{"p·v", []int{3, n, n + 1}, []int{3, n + 1, d}, probsMatMul, batched},
			product{"conv", []int{2, sz.o, 3 * n}, []int{2, 3 * n, n + 32}, convMatMul, batched},
		)
	}
	cases = append(cases, product{"linear", []int{2, 7, 12}, []int{5, 12}, LinearNoBias,
		func(x, w *Node) *Node { return DotGeneral(x, []int{2}, nil, w, []int{1}, nil) }})
	for _, c := range cases {
		a, bb := NormalTensor(rng, c.aDims...), NormalTensor(rng, c.bDims...)
		if c.name == "conv" { // one kernel broadcast over the batch, as Conv2dWith builds it
			a = NormalTensor(rng, append([]int{1}, c.aDims[1:]...)...)
		}
		var got [2][]*tensors.Tensor
		for i, f := range []func(a, b *Node) *Node{c.custom, c.plain} {
			outs, err := ExecOnceN(b, func(a, b *Node) []*Node {
				op := a
				if c.name == "conv" {
					op = BroadcastToDims(a, c.aDims...)
				}
				y := f(op, b)
				// A loss whose adjoint is not uniform, so that transposed
				// gradients cannot pass by symmetry.
				r := Iota(y.Graph(), y.Shape(), y.Rank()-1)
				loss := ReduceAllSum(Mul(Mul(y, y), Cos(r)))
				g := Gradient(loss, a, b)
				return []*Node{y, g[0], g[1]}
			}, a, bb)
			if err != nil {
				t.Fatal(err)
			}
			got[i] = outs
		}
		label := fmt.Sprintf("%s a%v b%v, custom vs autodiff", c.name, c.aDims, c.bDims)
		assertClose(t, label, []string{"product", "∂a", "∂b"}, got[0], got[1])
	}
}
