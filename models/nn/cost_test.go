package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
)

// TestGraphFLOPs: products count 2·M·N·K (batch axes included),
// convolutions 2·|out|·C·kh·kw, fused attention 4·B·h·N·M·d; nodes no
// output depends on count nothing.
func TestGraphFLOPs(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	g := NewGraph(b, "flops")
	param := func(name string, dims ...int) *Node { return Parameter(g, name, shapes.Make(dtypes.Float32, dims...)) }
	x, y := param("x", 3, 5, 7), param("y", 3, 7, 11)
	prod := DotGeneral(x, []int{2}, []int{0}, y, []int{1}, []int{0}) // [3,5,11], K=7
	img, kernel := param("img", 2, 4, 9, 9), param("kernel", 6, 4, 3, 3)
	conv := Conv2dWith(img, kernel, ConvParams{Stride: 1}, false) // [2,6,7,7]
	q, k := param("q", 2, 10, 3, 8), param("k", 2, 12, 3, 8)
	sdpa, _ := BackendFusedScaledDotProductAttention(q, k, k, 1, nil) // BSHD
	dense := BackendFusedDense(x, param("w", 13, 7), param("bias", 13),
		compute.DenseConfig{WeightLayout: compute.DenseLayoutOutputsInput}) // [3,5,13], K=7
	_ = MatMul(param("unused", 100, 100), param("unused2", 100, 100))
	for _, c := range []struct {
		name string
		out  *Node
		want float64
	}{
		{"DotGeneral", prod, 2 * 3 * 5 * 11 * 7},
		{"ConvGeneral", conv, 2 * (2 * 6 * 7 * 7) * (4 * 3 * 3)},
		{"FusedSDPA", sdpa, 4 * 2 * 3 * 10 * 12 * 8},
		{"FusedDense", dense, 2 * 3 * 5 * 13 * 7},
	} {
		if got := GraphFLOPs([]*Node{c.out}); got != c.want {
			t.Errorf("%s: %g FLOPs, want %g", c.name, got, c.want)
		}
	}
}

// TestFusedAttentionMatchesDecomposed: a forward-only view, with
// FusedAttention (the Go backend's fused forward) or without (products
// without hand-written gradients), computes the attention of the
// differentiable lowering, and without ForwardOnly the option changes
// nothing.
func TestFusedAttentionMatchesDecomposed(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	q, k, v := NormalTensor(rng, 2, 9, 12), NormalTensor(rng, 2, 5, 12), NormalTensor(rng, 2, 5, 12)
	run := func(fused, forwardOnly bool) ([]float32, float64) {
		return runAttention(t, b, q, k, v, 3, fused, forwardOnly)
	}
	want, wantFLOPs := run(false, false)
	got, gotFLOPs := run(true, true)
	if d := maxAbs(got, want); d > 1e-6 {
		t.Errorf("fused attention differs from the decomposed one by %g", d)
	}
	// q·kᵀ and p·v: 2·(2·B·h·N·M·d) either way.
	if gotFLOPs != wantFLOPs || wantFLOPs != 4*2*3*9*5*4 {
		t.Errorf("attention FLOPs: fused %g, decomposed %g, want %d", gotFLOPs, wantFLOPs, 4*2*3*9*5*4)
	}
	if plain, _ := run(false, true); maxAbs(plain, want) > 1e-6 {
		t.Errorf("forward-only decomposed attention differs by %g", maxAbs(plain, want))
	}
	if _, flops := run(true, false); flops != wantFLOPs {
		t.Errorf("FusedAttention without ForwardOnly changed the graph")
	}
}

// TestForwardAttentionChunks: a forward-only attention split into chunks of
// heads (one head each, and 4+2 of 6) or of query rows (8+1 of 9) computes
// the differentiable lowering's attention with the same product FLOPs.
func TestForwardAttentionChunks(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	const B, N, M, heads, C = 2, 9, 5, 3, 12
	q, k, v := NormalTensor(rng, B, N, C), NormalTensor(rng, B, M, C), NormalTensor(rng, B, M, C)
	run := func(forwardOnly bool) ([]float32, float64) {
		return runAttention(t, b, q, k, v, heads, false, forwardOnly)
	}
	want, wantFLOPs := run(false)
	defer func(saved int) { scoresChunkBytes = saved }(scoresChunkBytes)
	for _, c := range []struct {
		name  string
		bound int
	}{{"1 head a chunk", 4 * N * M}, {"4 heads a chunk", 4 * 4 * N * M}, {"8 rows a chunk", 4 * 8 * M}} {
		scoresChunkBytes = c.bound
		got, flops := run(true)
		if d := maxAbs(got, want); d > 1e-6 {
			t.Errorf("%s: attention differs from the differentiable one by %g", c.name, d)
		}
		if flops != wantFLOPs {
			t.Errorf("%s: %g FLOPs, want %g", c.name, flops, wantFLOPs)
		}
	}
}

// runAttention computes Attention(q, k, v) with heads heads, with
// FusedAttention set to fused, in a forward-only view or not, and returns
// its values and its graph's product FLOPs.
func runAttention(t *testing.T, b compute.Backend, q, k, v *tensors.Tensor, heads int, fused, forwardOnly bool) ([]float32, float64) {
	t.Helper()
	var flops float64
	exec, err := NewExec(b, func(q, k, v *Node) *Node {
		p := NewParams(nil, nil, Options{FusedAttention: fused})
		if forwardOnly {
			p = p.ForwardOnly()
		}
		out := Attention(p.Root(""), q, k, v, heads)
		flops = GraphFLOPs([]*Node{out})
		return out
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(q, k, v)
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := TensorFloat32(out[0])
	return data, flops
}
