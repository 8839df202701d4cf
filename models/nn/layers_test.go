package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
)

func maxAbs(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestConvLoweringsAgree: the im2col lowering computes the backend's
// convolution, values and gradients, for the kernel, stride and padding
// combinations the UNet and VAE use (3×3 same, 1×1, stride-2 with diffusers'
// asymmetric (0,1,0,1) padding, and an asymmetric stride-1 padding).
func TestConvLoweringsAgree(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		k, stride int
		pad       [4]int
	}{{3, 1, SamePadding(3)}, {1, 1, [4]int{}}, {3, 2, [4]int{1, 1, 1, 1}}, {3, 2, [4]int{0, 1, 0, 1}}, {3, 1, [4]int{0, 1, 2, 0}}} {
		x := NormalTensor(rng, 2, 3, 7, 6)
		w := NormalTensor(rng, 4, 3, c.k, c.k)
		var results [2][]*tensors.Tensor
		for i, im2col := range []bool{false, true} {
			outs, err := ExecOnceN(b, func(x, w *Node) []*Node {
				y := Conv2dWith(x, w, ConvParams{Stride: c.stride, Padding: c.pad}, im2col)
				loss := ReduceAllSum(Mul(y, y))
				g := Gradient(loss, x, w)
				return []*Node{y, g[0], g[1]}
			}, x, w)
			if err != nil {
				t.Fatal(err)
			}
			results[i] = outs
		}
		label := fmt.Sprintf("k=%d stride=%d pad=%v", c.k, c.stride, c.pad)
		assertClose(t, label, []string{"output", "grad x", "grad w"}, results[1], results[0])
		// The forward-only im2col lowering, for batches of two and one.
		for _, batch := range []int{2, 1} {
			outs, err := ExecOnceN(b, func(x, w *Node) []*Node {
				x = Slice(x, AxisRange(0, batch))
				cp := ConvParams{Stride: c.stride, Padding: c.pad}
				return []*Node{conv2d(x, w, cp, true, true), Conv2dWith(x, w, cp, false)}
			}, x, w)
			if err != nil {
				t.Fatal(err)
			}
			assertClose(t, fmt.Sprintf("%s forward-only B=%d", label, batch), []string{"output"}, outs[:1], outs[1:])
		}
	}
}

// assertClose checks got[j] against want[j], named names[j], to float32
// sums in another order: 1e-5 of the largest |want| (at least 1e-5). An
// all-zero want fails too: a gradient that never arrives must not pass.
func assertClose(t *testing.T, label string, names []string, got, want []*tensors.Tensor) {
	t.Helper()
	for j, what := range names {
		g, dims, _ := TensorFloat32(got[j])
		w, _, _ := TensorFloat32(want[j])
		scale := 0.0
		for _, v := range w {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		d := maxAbs(g, w)
		t.Logf("%s: %s %v max |diff| %.3g (scale %.3g)", label, what, dims, d, scale)
		if d > 1e-5*math.Max(1, scale) || scale == 0 {
			t.Errorf("%s: %s %v differs by %g (scale %g)", label, what, dims, d, scale)
		}
	}
}

// TestUpsampleNearestGradient: each input pixel's gradient is the sum over
// its 2×2 copies, as for F.interpolate(mode="nearest").
func TestUpsampleNearestGradient(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4}, 1, 1, 2, 2)
	weights := make([]float32, 16)
	for i := range weights {
		weights[i] = float32(i)
	}
	wt := tensors.FromFlatDataAndDimensions(weights, 1, 1, 4, 4)
	outs, err := ExecOnceN(b, func(x, w *Node) []*Node {
		y := UpsampleNearest2x(x)
		return []*Node{y, Gradient(ReduceAllSum(Mul(y, w)), x)[0]}
	}, x, wt)
	if err != nil {
		t.Fatal(err)
	}
	y, _, _ := TensorFloat32(outs[0])
	wantY := []float32{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}
	if maxAbs(y, wantY) != 0 {
		t.Errorf("upsample = %v, want %v", y, wantY)
	}
	g, _, _ := TensorFloat32(outs[1])
	// Pixel (0,0) feeds positions 0,1,4,5 of the 4×4 map: 0+1+4+5 = 10.
	wantG := []float32{10, 18, 42, 50}
	if maxAbs(g, wantG) != 0 {
		t.Errorf("gradient = %v, want %v", g, wantG)
	}
}

// TestGroupNormMatchesFormula checks GroupNorm against a float64 host
// computation of torch.nn.GroupNorm's definition.
func TestGroupNormMatchesFormula(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const B, C, H, W, G = 2, 4, 3, 3, 2
	x := NormalTensor(rng, B, C, H, W)
	gamma := NormalTensor(rng, C)
	beta := NormalTensor(rng, C)
	// The differentiable lowering and the forward-only one (the backend's
	// fused layer norm over each group).
	for _, forwardOnly := range []bool{false, true} {
		out, err := ExecOnce(b, func(x, gm, bt *Node) *Node {
			p := NewParams([]string{"n.weight", "n.bias"}, []*Node{gm, bt}, Options{})
			if forwardOnly {
				p = p.ForwardOnly()
			}
			return GroupNorm(p.Root("n"), x, G, 1e-5)
		}, x, gamma, beta)
		if err != nil {
			t.Fatal(err)
		}
		got, _, _ := TensorFloat32(out)
		if worst := groupNormError(x, gamma, beta, got, G); worst > 1e-5 {
			t.Errorf("GroupNorm (forward only: %v) differs from its definition by %g", forwardOnly, worst)
		}
	}
}

// groupNormError is the largest difference between got and a float64
// host computation of torch.nn.GroupNorm (eps 1e-5) of x [B,C,H,W].
func groupNormError(x, gamma, beta *tensors.Tensor, got []float32, G int) float64 {
	d := x.Shape().Dimensions
	B, C, H, W := d[0], d[1], d[2], d[3]
	xs, _, _ := TensorFloat32(x)
	gs, _, _ := TensorFloat32(gamma)
	bs, _, _ := TensorFloat32(beta)
	per := C / G * H * W
	worst := 0.0
	for n := range B {
		for g := range G {
			base := (n*C + g*C/G) * H * W
			var mean, sq float64
			for i := range per {
				mean += float64(xs[base+i])
			}
			mean /= float64(per)
			for i := range per {
				d := float64(xs[base+i]) - mean
				sq += d * d
			}
			std := math.Sqrt(sq/float64(per) + 1e-5)
			for i := range per {
				c := g*C/G + i/(H*W)
				want := (float64(xs[base+i])-mean)/std*float64(gs[c]) + float64(bs[c])
				worst = math.Max(worst, math.Abs(want-float64(got[base+i])))
			}
		}
	}
	return worst
}

// TestForwardOnlyLoweringsMatchFormulas: LayerNorm and Linear in both
// views (forward-only: the backend's fused layer norm and dense op), the
// fused SiLU and exact GELU with their gradients, and SplitLastAxis's
// forward-only Pads, against float64 host computations of their
// definitions.
func TestForwardOnlyLoweringsMatchFormulas(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const N, C = 5, 12
	x := NormalTensor(rng, 2, N, C)
	gamma, beta := NormalTensor(rng, C), NormalTensor(rng, C)
	xs, _, _ := TensorFloat32(x)
	gs, _, _ := TensorFloat32(gamma)
	bs, _, _ := TensorFloat32(beta)
	const O = 7
	lw, lb := NormalTensor(rng, O, C), NormalTensor(rng, O)
	ws, _, _ := TensorFloat32(lw)
	lbs, _, _ := TensorFloat32(lb)
	for _, forwardOnly := range []bool{false, true} {
		outs, err := ExecOnceN(b, func(x, gm, bt, lw, lb *Node) []*Node {
			p := NewParams([]string{"n.weight", "n.bias", "l.weight", "l.bias"}, []*Node{gm, bt, lw, lb}, Options{})
			if forwardOnly {
				p = p.ForwardOnly()
			}
			s := p.Root("n")
			return append([]*Node{LayerNorm(s, x, 1e-5), Linear(p.Root("l"), x)}, SplitLastAxis(s, x, 3)...)
		}, x, gamma, beta, lw, lb)
		if err != nil {
			t.Fatal(err)
		}
		ln, _, _ := TensorFloat32(outs[0])
		worst := 0.0
		for r := range 2 * N {
			row := xs[r*C : (r+1)*C]
			var mean, sq float64
			for _, v := range row {
				mean += float64(v)
			}
			mean /= C
			for _, v := range row {
				sq += (float64(v) - mean) * (float64(v) - mean)
			}
			std := math.Sqrt(sq/C + 1e-5)
			for c, v := range row {
				want := (float64(v)-mean)/std*float64(gs[c]) + float64(bs[c])
				worst = math.Max(worst, math.Abs(want-float64(ln[r*C+c])))
			}
		}
		if worst > 1e-5 {
			t.Errorf("LayerNorm (forward only: %v) differs from its definition by %g", forwardOnly, worst)
		}
		lin, _, _ := TensorFloat32(outs[1])
		worst = 0
		for r := range 2 * N {
			for o := range O {
				want := float64(lbs[o])
				for c := range C {
					want += float64(xs[r*C+c]) * float64(ws[o*C+c])
				}
				worst = math.Max(worst, math.Abs(want-float64(lin[r*O+o])))
			}
		}
		if worst > 1e-5 {
			t.Errorf("Linear (forward only: %v) differs from x·wᵀ+b by %g", forwardOnly, worst)
		}
		for part := range 3 {
			got, _, _ := TensorFloat32(outs[2+part])
			if len(got) != 2*N*C/3 {
				t.Fatalf("SplitLastAxis part %d has %d values, want %d", part, len(got), 2*N*C/3)
			}
			for r := range 2 * N {
				for c := range C / 3 {
					if g, w := got[r*C/3+c], xs[r*C+part*C/3+c]; g != w {
						t.Fatalf("SplitLastAxis (forward only: %v) part %d [%d,%d] = %g, want %g", forwardOnly, part, r, c, g, w)
					}
				}
			}
		}
	}
	// SiLU and GELU and their derivatives (the gradient of the sum).
	outs, err := ExecOnceN(b, func(x *Node) []*Node {
		silu, gelu := SiLU(x), GELU(x)
		g := Gradient(Add(ReduceAllSum(silu), ReduceAllSum(gelu)), x)
		gs := Gradient(ReduceAllSum(SiLU(x)), x)
		return []*Node{silu, gelu, gs[0], Sub(g[0], gs[0])}
	}, x)
	if err != nil {
		t.Fatal(err)
	}
	var vals [4][]float32
	for i := range vals {
		vals[i], _, _ = TensorFloat32(outs[i])
	}
	worst := 0.0
	for i, v := range xs {
		x := float64(v)
		sig := 1 / (1 + math.Exp(-x))
		cdf := 0.5 * (1 + math.Erf(x/math.Sqrt2))
		pdf := math.Exp(-x*x/2) / math.Sqrt(2*math.Pi)
		for k, want := range []float64{x * sig, x * cdf, sig * (1 + x*(1-sig)), cdf + x*pdf} {
			worst = math.Max(worst, math.Abs(want-float64(vals[k][i])))
		}
	}
	if worst > 1e-5 {
		t.Errorf("SiLU/GELU or their gradients differ from their definitions by %g", worst)
	}
}
