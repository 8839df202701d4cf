package nn

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/ml/layers/activation"
)

// Linear is torch.nn.Linear: y = x·Wᵀ + b, with weight [out, in] and an
// optional bias, on the last axis of x. An adapter at this scope adds its
// update to y.
func Linear(s Scope, x *Node) *Node {
	w := s.Param("weight")
	if w.Shape().Dimensions[1] != x.Shape().Dimensions[x.Rank()-1] {
		panic(fmt.Errorf("%s: input has %d features, weight %v wants %d",
			s.Path(), x.Shape().Dimensions[x.Rank()-1], w.Shape().Dimensions, w.Shape().Dimensions[1]))
	}
	b := s.Optional("bias")
	var y *Node
	if s.p.forwardOnly {
		y = linearForward(x, w, b)
	} else {
		y = addBias(LinearNoBias(x, w), b)
	}
	if a := s.adapter(); a != nil {
		y = a.Apply(s, x, y, nil)
	}
	return y
}

// linearForward is x·wᵀ + b (b may be nil) for a forward-only pass, the
// weight contracted as it stands. With a bias it is the backend's fused
// dense op where it has one: on the Go backend the bias is added as each
// output tile of the product is written (its GEMM epilogue) instead of in a
// single-threaded pass over the output afterwards.
func linearForward(x, w, b *Node) *Node {
	product := func() *Node {
		return addBias(DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil), b)
	}
	if b == nil {
		return product()
	}
	y, _ := InternalFusedOpCaller(
		func() *Node {
			return BackendFusedDense(x, w, b, compute.DenseConfig{WeightLayout: compute.DenseLayoutOutputsInput})
		},
		product, true)
	return y
}

// addBias adds b (nil: nothing) over the last axis of y.
func addBias(y, b *Node) *Node {
	if b == nil {
		return y
	}
	return Add(y, ExpandLeftToRank(b, y.Rank()))
}

// ConvParams are a 2D convolution's stride and padding (top, bottom, left,
// right), as torch.nn.Conv2d applies them.
type ConvParams struct {
	Stride  int
	Padding [4]int
}

// SamePadding is the symmetric padding torch uses for an odd kernel k with
// padding=(k-1)/2.
func SamePadding(k int) [4]int {
	p := (k - 1) / 2
	return [4]int{p, p, p, p}
}

// Conv2d is torch.nn.Conv2d on NCHW input with an OIHW weight and optional
// bias. An adapter at this scope adds its update to the output.
func Conv2d(s Scope, x *Node, stride int, padding [4]int) *Node {
	w := s.Param("weight")
	cp := ConvParams{Stride: stride, Padding: padding}
	y := conv2d(x, w, cp, s.p.opts.ConvIm2Col, s.p.forwardOnly)
	if b := s.Optional("bias"); b != nil {
		y = Add(y, Reshape(b, 1, b.Shape().Dimensions[0], 1, 1))
	}
	if a := s.adapter(); a != nil {
		y = a.Apply(s, x, y, &cp)
	}
	return y
}

// Conv2dWith convolves x [B,C,H,W] with w [O,C,kh,kw] (no bias), lowering to
// im2col + matmul when im2col is set, else to the backend's convolution.
func Conv2dWith(x, w *Node, cp ConvParams, im2col bool) *Node {
	return conv2d(x, w, cp, im2col, false)
}

// conv2d is Conv2dWith; forwardOnly (no gradient is taken) lowers im2col
// without the hand-written product gradients (see im2colForward).
func conv2d(x, w *Node, cp ConvParams, im2col, forwardOnly bool) *Node {
	xd, wd := x.Shape().Dimensions, w.Shape().Dimensions
	if len(xd) != 4 || len(wd) != 4 || xd[1] != wd[1] {
		panic(fmt.Errorf("conv2d: input %v and weight %v do not fit (want NCHW and OIHW with equal C)", xd, wd))
	}
	stride := max(cp.Stride, 1)
	if !im2col {
		axes := ConvolveAxesConfig{
			InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
			KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: []int{2, 3},
			OutputBatch: 0, OutputChannels: 1, OutputSpatial: []int{2, 3},
		}
		pads := [][2]int{{cp.Padding[0], cp.Padding[1]}, {cp.Padding[2], cp.Padding[3]}}
		return ConvGeneral(x, w, axes, []int{stride, stride}, pads, nil, nil, 1, 1)
	}
	B, C, H, W := xd[0], xd[1], xd[2], xd[3]
	O, kh, kw := wd[0], wd[2], wd[3]
	Hp, Wp := H+cp.Padding[0]+cp.Padding[1], W+cp.Padding[2]+cp.Padding[3]
	Ho, Wo := (Hp-kh)/stride+1, (Wp-kw)/stride+1
	if forwardOnly {
		return im2colForward(x, w, stride, cp.Padding, Ho, Wo)
	}
	xp := padSpatial(x, cp.Padding)
	var cols *Node
	if kh == 1 && kw == 1 && stride == 1 {
		cols = Reshape(xp, B, C, Ho*Wo)
	} else {
		// [B, C, kh*kw, Ho, Wo] flattens C-major like the OIHW weight.
		cols = Reshape(Stack(patches(xp, kh, kw, stride, Ho, Wo), 2), B, C*kh*kw, Ho*Wo)
	}
	// The weight is broadcast over the batch so that the product is
	// [B,O,K]·[B,K,P] -> [B,O,P]: the "matmul" layout the Go backend runs
	// without transposing the 9× larger cols, and already NCHW.
	wm := BroadcastToDims(Reshape(w, 1, O, C*kh*kw), B, O, C*kh*kw)
	return Reshape(convMatMul(wm, cols), B, O, Ho, Wo)
}

// im2colForward is the im2col convolution of x [B,C,H,W] with padding pad
// for a graph that takes no gradient: the OIHW weight is contracted as it
// stands, [O,C·kh·kw]·[C·kh·kw,B·P], with the columns built channel-major.
// On the Go backend a reshape or broadcast of a weight is a copy, and a
// graph's weight-only ops all run up front side by side: the gradient
// layout's reshaped and broadcast weights (and the product gradients'
// identities) held copies of the weights at once. An SD 1.5 forward on an
// 8×8 latent, where activations are negligible, peaked at 8.1 GB with
// them and 4.7 GB without (3.4 GB of weights). The price is two
// transposes of activations when B > 1.
func im2colForward(x, w *Node, stride int, pad [4]int, Ho, Wo int) *Node {
	xd, wd := x.Shape().Dimensions, w.Shape().Dimensions
	B, C, O, kh, kw := xd[0], xd[1], wd[0], wd[2], wd[3]
	xc := x
	if B > 1 {
		xc = TransposeAllAxes(x, 1, 0, 2, 3) // [C,B,H,W]
	} else {
		xc = Reshape(x, C, 1, xd[2], xd[3])
	}
	var cols *Node
	switch {
	case kh == 1 && kw == 1 && stride == 1 && pad == [4]int{}:
		cols = xc
	case stride == 1:
		cols = Stack(windows(xc, kh, kw, pad, Ho, Wo), 1) // [C, kh*kw, B, Ho, Wo]
	default:
		cols = Stack(patches(padSpatial(xc, pad), kh, kw, stride, Ho, Wo), 1)
	}
	y := DotGeneral(w, []int{1, 2, 3}, nil, Reshape(cols, C, kh, kw, B*Ho*Wo), []int{0, 1, 2}, nil) // [O, B·P]
	if B == 1 {
		return Reshape(y, 1, O, Ho, Wo)
	}
	return TransposeAllAxes(Reshape(y, O, B, Ho, Wo), 1, 0, 2, 3)
}

// windows are patches for stride 1 read straight from the unpadded x: each
// window is a Pad of x whose negative ends crop it and whose positive ends
// are the convolution's zero padding. The Go backend pads by copying whole
// rows where Slice copies one element at a time, and the padded copy of x
// is never made. Pad's negative ends have no gradient here: forward only.
func windows(x *Node, kh, kw int, pad [4]int, Ho, Wo int) []*Node {
	d := x.Shape().Dimensions
	H, W := d[2], d[3]
	zero := ScalarZero(x.Graph(), x.DType())
	out := make([]*Node, 0, kh*kw)
	for dy := range kh {
		for dx := range kw {
			top, left := pad[0]-dy, pad[2]-dx // window row i is x row i-top
			out = append(out, Pad(x, zero, compute.PadAxis{}, compute.PadAxis{},
				compute.PadAxis{Start: top, End: Ho - H - top}, compute.PadAxis{Start: left, End: Wo - W - left}))
		}
	}
	return out
}

// patches are the kh·kw strided windows of x's last two axes, each Ho×Wo,
// in the OIHW weight's (dy, dx) order.
func patches(x *Node, kh, kw, stride, Ho, Wo int) []*Node {
	out := make([]*Node, 0, kh*kw)
	for dy := range kh {
		for dx := range kw {
			out = append(out, Slice(x, AxisRange(), AxisRange(),
				AxisRange(dy, dy+(Ho-1)*stride+1).Stride(stride),
				AxisRange(dx, dx+(Wo-1)*stride+1).Stride(stride)))
		}
	}
	return out
}

// padSpatial zero-pads the last two axes (top, bottom, left, right).
func padSpatial(x *Node, p [4]int) *Node {
	if p == [4]int{} {
		return x
	}
	return Pad(x, ScalarZero(x.Graph(), x.DType()), compute.PadAxis{}, compute.PadAxis{},
		compute.PadAxis{Start: p[0], End: p[1]}, compute.PadAxis{Start: p[2], End: p[3]})
}

// GroupNorm is torch.nn.GroupNorm over axis 1 of x [B, C, ...] with biased
// variance, then the per-channel affine weight and bias. A forward-only
// view normalizes each group with the backend's fused layer norm (on the Go
// backend one parallel pass instead of seven ops, most single-threaded).
func GroupNorm(s Scope, x *Node, groups int, eps float64) *Node {
	d := x.Shape().Dimensions
	B, C := d[0], d[1]
	if groups <= 0 || C%groups != 0 {
		panic(fmt.Errorf("%s: %d channels do not split into %d groups", s.Path(), C, groups))
	}
	in := x.DType()
	g := Reshape(upcast(x), B, groups, -1)
	var normed *Node
	if s.p.forwardOnly {
		normed = fusedNorm(g, eps, nil, nil)
	} else {
		normed = decomposedNorm(g, eps)
	}
	normed = Reshape(normed, d...)
	affine := make([]int, len(d))
	for i := range affine {
		affine[i] = 1
	}
	affine[1] = C
	w, b := upcast(s.Param("weight")), upcast(s.Param("bias"))
	return downcast(Add(Mul(normed, Reshape(w, affine...)), Reshape(b, affine...)), in)
}

// decomposedNorm is (x − mean)/√(var + eps) over the last axis of x, with
// the biased variance, as differentiable graph ops.
func decomposedNorm(x *Node, eps float64) *Node {
	axis := x.Rank() - 1
	mean := ReduceAndKeep(x, ReduceMean, axis)
	centered := Sub(x, mean)
	variance := ReduceAndKeep(Square(centered), ReduceMean, axis)
	return Div(centered, Sqrt(AddScalar(variance, eps))) // Rsqrt has no gradient in GoMLX v0.28.2
}

// fusedNorm is decomposedNorm times gamma plus beta over the last axis
// (both nil: neither) as the backend's fused layer norm, or as graph ops on
// a backend without one. Only for forward-only passes: a gradient through
// the fused op differentiates its decomposed copy, which the backward pass
// would then also evaluate.
func fusedNorm(x *Node, eps float64, gamma, beta *Node) *Node {
	y, _ := InternalFusedOpCaller(
		func() *Node { return BackendFusedLayerNorm(x, []int{x.Rank() - 1}, eps, gamma, beta) },
		func() *Node { return scaleShift(decomposedNorm(x, eps), gamma, beta) },
		true)
	return y
}

// scaleShift is y·gamma + beta over the last axis of y (both nil: y).
func scaleShift(y, gamma, beta *Node) *Node {
	if gamma == nil {
		return y
	}
	return addBias(Mul(y, ExpandLeftToRank(gamma, y.Rank())), beta)
}

// upcast converts a half-precision x to float32, where mixed precision
// keeps norms and softmax (torch's autocast runs group_norm, layer_norm
// and softmax in float32: their sums of squares and exponentials overflow
// or lose the mean in 8 or 11 bits of mantissa). Other dtypes pass.
func upcast(x *Node) *Node {
	if x.DType().IsHalfPrecision() {
		return ConvertDType(x, dtypes.Float32)
	}
	return x
}

// downcast converts an upcast result back to the input's dtype.
func downcast(x *Node, dtype dtypes.DType) *Node {
	if x.DType() != dtype {
		return ConvertDType(x, dtype)
	}
	return x
}

// LayerNorm is torch.nn.LayerNorm over the last axis with weight and bias;
// a forward-only view runs it as the backend's fused layer norm.
func LayerNorm(s Scope, x *Node, eps float64) *Node {
	in := x.DType()
	x = upcast(x)
	w, b := upcast(s.Param("weight")), upcast(s.Param("bias"))
	if s.p.forwardOnly {
		return downcast(fusedNorm(x, eps, w, b), in)
	}
	return downcast(scaleShift(decomposedNorm(x, eps), w, b), in)
}

// SiLU is x·sigmoid(x), as the backend's fused activation where it has one
// (with its own gradient; on the Go backend one parallel pass instead of a
// sigmoid and a single-threaded product), else as graph ops.
func SiLU(x *Node) *Node {
	return activation.Apply(activation.TypeSilu, x)
}

// GELU is the exact (erf) GELU of torch.nn.functional.gelu, fused like SiLU.
func GELU(x *Node) *Node {
	return activation.Apply(activation.TypeGelu, x)
}

// SplitLastAxis cuts x into parts equal pieces along its last axis, like
// torch.chunk. A forward-only view cuts them as Pads with negative ends,
// which the Go backend copies a row at a time where Slice copies an
// element at a time (negative pads have no gradient here).
func SplitLastAxis(s Scope, x *Node, parts int) []*Node {
	if !s.p.forwardOnly {
		return Split(x, -1, parts)
	}
	d := x.Shape().Dimensions
	n := d[len(d)-1]
	if n%parts != 0 {
		panic(fmt.Errorf("%s: last axis of %v does not split into %d parts", s.Path(), d, parts))
	}
	size := n / parts
	zero := ScalarZero(x.Graph(), x.DType())
	out := make([]*Node, parts)
	for i := range parts {
		axes := make([]compute.PadAxis, len(d))
		axes[len(d)-1] = compute.PadAxis{Start: -i * size, End: -(n - (i+1)*size)}
		out[i] = Pad(x, zero, axes...)
	}
	return out
}

// QuickGELU is x·sigmoid(1.702x), CLIP's activation.
func QuickGELU(x *Node) *Node { return Mul(x, Sigmoid(MulScalar(x, 1.702))) }

// UpsampleNearest2x repeats each pixel of x [B,C,H,W] 2×2, like
// F.interpolate(scale_factor=2, mode="nearest"), as one broadcast between
// reshapes: forward and backward measured 6–8× faster than GoMLX's
// Interpolate(…).Nearest() on the Go backend (whose gradient is right since
// v0.28.16; v0.28.2's was not).
func UpsampleNearest2x(x *Node) *Node {
	d := x.Shape().Dimensions
	B, C, H, W := d[0], d[1], d[2], d[3]
	y := Reshape(x, B, C, H, 1, W, 1)
	y = BroadcastToDims(y, B, C, H, 2, W, 2)
	return Reshape(y, B, C, 2*H, 2*W)
}

// Attention is multi-head scaled dot-product attention of q [B,N,C] over
// k, v [B,M,C] with heads heads: softmax(q·kᵀ/√d)·v per head.
//
// Both products are laid out as [B·h, rows, K]·[B·h, K, cols], the "matmul"
// layout the Go backend's SIMD kernels run fastest (its q·kᵀ kernel for
// small rows-by-cols products is ten times slower); only q, k, v and the
// output are transposed, never the N×M scores, in the forward pass and (see
// batchedMatMul, probsMatMul) in the backward pass. The 1/√d scale is
// applied to q, which is M times smaller than the scores.
func Attention(s Scope, q, k, v *Node, heads int) *Node {
	qd, kd := q.Shape().Dimensions, k.Shape().Dimensions
	B, N, C := qd[0], qd[1], qd[2]
	M := kd[1]
	if heads <= 0 || C%heads != 0 {
		panic(fmt.Errorf("attention: %d channels do not split into %d heads", C, heads))
	}
	d := C / heads
	decomposed := func() *Node { return decomposedAttention(q, k, v, B, N, M, heads, d, s.p.forwardOnly) }
	if !s.p.opts.FusedAttention || !s.p.forwardOnly {
		return decomposed()
	}
	// [B,N,C] is [B,N,h,d] (BSHD) as it stands: no transposes.
	out, _ := InternalFusedOpCaller(
		func() *Node {
			o, _ := BackendFusedScaledDotProductAttention(Reshape(q, B, N, heads, d), Reshape(k, B, M, heads, d),
				Reshape(v, B, M, heads, d), compute.AttentionAxesLayoutBSHD,
				&compute.ScaledDotProductAttentionConfig{Scale: 1 / math.Sqrt(float64(d))})
			return Reshape(o, B, N, C)
		},
		decomposed, true)
	return out
}

// decomposedAttention is Attention as products and a softmax.
// forwardOnly (no gradient is taken) skips the hand-written gradients.
func decomposedAttention(q, k, v *Node, B, N, M, heads, d int, forwardOnly bool) *Node {
	C := heads * d
	G := B * heads
	q = TransposeAllAxes(Reshape(MulScalar(q, 1/math.Sqrt(float64(d))), B, N, heads, d), 0, 2, 1, 3) // [B,h,N,d]
	kT := TransposeAllAxes(Reshape(k, B, M, heads, d), 0, 2, 3, 1)                                   // [B,h,d,M]
	v = TransposeAllAxes(Reshape(v, B, M, heads, d), 0, 2, 1, 3)                                     // [B,h,M,d]
	qg, kg, vg := Reshape(q, G, N, d), Reshape(kT, G, d, M), Reshape(v, G, M, d)
	var out *Node // [G,N,d]
	if forwardOnly {
		out = forwardAttention(qg, kg, vg)
	} else {
		// The softmax runs in float32 under mixed precision (upcast), its
		// probabilities multiply v in v's dtype.
		scores := upcast(batchedMatMul(qg, kg)) // [G,N,M]
		out = probsMatMul(downcast(softmaxLastAxis(scores), vg.DType()), vg)
	}
	return Reshape(TransposeAllAxes(Reshape(out, B, heads, N, d), 0, 2, 1, 3), B, N, C)
}

// scoresChunkBytes bounds the float32 scores a forward-only attention holds
// at once; their probabilities take as much again. An SD 1.5 self-attention
// on a 64×64 latent has 8 heads of 4096×4096 scores, 512 MiB with all heads
// at once: with 16 MiB (a quarter of one head's queries) a forward peaked
// about 1.3 GiB lower.
// A variable so that tests can split tiny attentions.
var scoresChunkBytes = 16 << 20

// forwardAttention is softmax(q·k)·v for q [G,N,d], kT [G,d,M] and
// v [G,M,d] (the 1/√d already in q), as [G,N,d], a few of the G heads at a
// time, or a few query rows of one head when one head's scores exceed
// scoresChunkBytes. Each chunk's q waits for the previous chunk's output (a
// scheduling barrier): without it the backend, which runs independent nodes
// side by side, would start every chunk's scores at once and the bound would
// bound nothing.
// As in the differentiable lowering, the softmax runs in float32.
func forwardAttention(q, kT, v *Node) *Node {
	qd := q.Shape().Dimensions
	G, N, M := qd[0], qd[1], kT.Shape().Dimensions[2]
	per := max(1, scoresChunkBytes/(4*N*M))        // heads a chunk
	rows := min(N, max(8, scoresChunkBytes/(4*M))) // query rows a chunk, when one head is too large
	var prev *Node
	var heads []*Node
	for g0 := 0; g0 < G; g0 += per {
		g := AxisRange(g0, min(G, g0+per))
		kc, vc := kT, v
		if per < G {
			kc, vc = Slice(kT, g), Slice(v, g)
		}
		var parts []*Node
		for n0 := 0; n0 < N; n0 += rows {
			qc := q
			if per < G || rows < N {
				qc = Slice(q, g, AxisRange(n0, min(N, n0+rows)))
			}
			if prev != nil {
				qc = SchedulingBarrier(qc, prev)
			}
			p := downcast(Softmax(upcast(matMul(qc, kc)), -1), vc.DType())
			prev = matMul(p, vc)
			parts = append(parts, prev)
		}
		heads = append(heads, concat(parts, 1))
	}
	return concat(heads, 0)
}

// concat is Concatenate(xs, axis), or xs[0] alone.
func concat(xs []*Node, axis int) *Node {
	if len(xs) == 1 {
		return xs[0]
	}
	return Concatenate(xs, axis)
}

// softmaxLastAxis is graph.Softmax over the last axis, differentiated in
// closed form, ∂x = y·(v − Σ v·y), from the fused kernel's output y.
// graph.Softmax differentiates a decomposed copy (max, exp, sum, divide)
// that the backward pass must first evaluate over the whole score tensor.
func softmaxLastAxis(x *Node) *Node {
	var y *Node
	// The "decomposed" alternative is x itself: InternalFusedOpCaller hands
	// it the fused node's adjoint v, and its custom gradient turns v into ∂x.
	vjp := IdentityWithCustomGradient(x, func(_, v *Node) *Node {
		return Mul(y, Sub(v, ReduceAndKeep(Mul(v, y), ReduceSum, -1)))
	})
	y, fused := InternalFusedOpCaller(
		func() *Node { return BackendFusedSoftmax(x, x.Rank()-1) },
		func() *Node { return vjp },
		true)
	if !fused {
		return Softmax(x, -1)
	}
	return y
}

// SinusoidalEmbedding is diffusers' get_timestep_embedding: for t [B]
// (float32), half = dim/2 frequencies exp(-ln(10000)·i/(half-shift)),
// [sin(t·f), cos(t·f)], swapped to [cos, sin] when flip is set, zero-padded
// when dim is odd. The frequencies are computed on the host in float32, as
// torch computes them.
func SinusoidalEmbedding(t *Node, dim int, flip bool, shift float64) *Node {
	half := dim / 2
	freqs := make([]float32, half)
	for i := range freqs {
		exponent := float32(-math.Log(10000)) * float32(i)
		exponent /= float32(float64(half) - shift)
		freqs[i] = float32(math.Exp(float64(exponent)))
	}
	g := t.Graph()
	B := t.Shape().Dimensions[0]
	args := Mul(Reshape(ConvertDType(t, freqsDType), B, 1), Reshape(Const(g, freqs), 1, half))
	sin, cos := Sin(args), Cos(args)
	parts := []*Node{sin, cos}
	if flip {
		parts = []*Node{cos, sin}
	}
	emb := Concatenate(parts, 1)
	if dim%2 == 1 {
		emb = Concatenate([]*Node{emb, Zeros(g, shapes.Make(emb.DType(), B, 1))}, 1)
	}
	return emb
}
