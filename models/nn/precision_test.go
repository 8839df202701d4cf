package nn

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/dtypes/bfloat16"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
)

// TestNormsOfHalfInputsRunInFloat32: group and layer norm of a bfloat16
// input come back in bfloat16 and equal the float64 norm of the same
// (exactly representable) values to one bfloat16 rounding, |Δ| ≤ 2^-8·|y|
// plus a rounding of the smallest outputs. The input is 64 + k/2 for k in
// 0..15, a large mean over a small spread (bfloat16's spacing at 64 is
// 0.5, so each value is exact): computed in bfloat16, the centered values
// x − mean carry the mean's rounding (a quarter of the spread) and the
// variance of 8-bit squares is off by more than that.
func TestNormsOfHalfInputsRunInFloat32(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	const C, L = 4, 16 // GroupNorm: [1, C, L] with 2 groups; LayerNorm over L
	vals := make([]float32, C*L)
	for i := range vals {
		vals[i] = 64 + float32((i*7)%16)/2
	}
	x := tensors.FromFlatDataAndDimensions(bfloat16.FromFloat32s(vals...), 1, C, L)
	ones := func(n int) *tensors.Tensor {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return tensors.FromFlatDataAndDimensions(bfloat16.FromFloat32s(v...), n)
	}
	zeros := func(n int) *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(bfloat16.FromFloat32s(make([]float32, n)...), n)
	}
	normRef := func(group []float32, eps float64) []float64 {
		var mean, variance float64
		for _, v := range group {
			mean += float64(v)
		}
		mean /= float64(len(group))
		for _, v := range group {
			variance += (float64(v) - mean) * (float64(v) - mean)
		}
		variance /= float64(len(group))
		out := make([]float64, len(group))
		for i, v := range group {
			out[i] = (float64(v) - mean) / math.Sqrt(variance+eps)
		}
		return out
	}
	check := func(label string, got *tensors.Tensor, want []float64) {
		t.Helper()
		if got.DType() != dtypes.BFloat16 {
			t.Fatalf("%s: output dtype %s, want the input's BFloat16", label, got.DType())
		}
		g, err := tensors.CopyFlatData[bfloat16.BFloat16](got)
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			if d := math.Abs(float64(g[i].Float32()) - w); d > math.Ldexp(1, -8)*math.Abs(w)+1e-3 {
				t.Errorf("%s[%d] = %v, float64 norm %v: off by %.3g, more than one bfloat16 rounding", label, i, g[i].Float32(), w, d)
			}
		}
	}
	outs, err := ExecOnceN(b, func(x, wc, bc, wl, bl *Node) []*Node {
		gn := NewParams([]string{"weight", "bias"}, []*Node{wc, bc}, Options{}).Root("")
		ln := NewParams([]string{"weight", "bias"}, []*Node{wl, bl}, Options{}).Root("")
		return []*Node{GroupNorm(gn, x, 2, 1e-5), LayerNorm(ln, x, 1e-5)}
	}, x, ones(C), zeros(C), ones(L), zeros(L))
	if err != nil {
		t.Fatal(err)
	}
	var gnWant, lnWant []float64
	for g := range 2 {
		gnWant = append(gnWant, normRef(vals[g*C*L/2:(g+1)*C*L/2], 1e-5)...)
	}
	for c := range C {
		lnWant = append(lnWant, normRef(vals[c*L:(c+1)*L], 1e-5)...)
	}
	check("GroupNorm", outs[0], gnWant)
	check("LayerNorm", outs[1], lnWant)
}
