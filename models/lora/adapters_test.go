package lora_test

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// TestNewStartsAtTheBaseModel: A is Kaiming-uniform within ±1/√fan_in, B is
// zero, and the adapted UNet's output equals the base UNet's exactly, on both
// convolution lowerings.
func TestNewStartsAtTheBaseModel(t *testing.T) {
	b := testBackend(t)
	for _, m := range testModels(t) {
		a, err := lora.New(m.model.Config.ParamShapes(), lora.Config{Rank: 4, Alpha: 4}, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, mod := range a.Modules {
			A, dims, _ := a.Weights.Float32(lora.ParamA(mod.Name))
			bound := 1 / math.Sqrt(float64(size(dims[1:])))
			if got := maxAbs(A); got > bound || got < bound/2 {
				t.Errorf("%s: max |A| = %v, want within (%v/2, %v]", mod.Name, got, bound, bound)
			}
			if B, _, _ := a.Weights.Float32(lora.ParamB(mod.Name)); maxAbs(B) != 0 {
				t.Errorf("%s: B is not zero", mod.Name)
			}
		}
		for _, im2col := range []bool{true, false} {
			opts := nn.Options{ConvIm2Col: im2col}
			want := forward(t, b, m, m.model.Weights, nil, opts)
			got := forward(t, b, m, m.model.Weights, a, opts)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s im2col=%v: output %d is %v with zero-B adapters, %v without", m.name, im2col, i, got[i], want[i])
				}
			}
			t.Logf("%s im2col=%v: %d adapters (%d parameters), all %d outputs identical to the base UNet",
				m.name, im2col, len(a.Modules), a.NumTrainable(), len(want))
		}
	}
}

// TestFusedMatchesUnfused: with random B and alpha ≠ rank, the UNet with
// adapters bound and the plain UNet with the adapters fused into its weights
// agree to float32 rounding; Unfuse gives the base weights back.
func TestFusedMatchesUnfused(t *testing.T) {
	b := testBackend(t)
	opts := nn.Options{ConvIm2Col: true}
	for _, m := range testModels(t) {
		a, err := lora.New(m.model.Config.ParamShapes(), lora.Config{Rank: 5, Alpha: 6}, 11)
		if err != nil {
			t.Fatal(err)
		}
		randomizeUp(t, a, 5, 0.1)
		base := forward(t, b, m, m.model.Weights, nil, opts)
		unfused := forward(t, b, m, m.model.Weights, a, opts)
		fusedW, err := m.model.Weights.Clone()
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Fuse(fusedW); err != nil {
			t.Fatal(err)
		}
		fused := forward(t, b, m, fusedW, nil, opts)
		effect, diff := maxAbsDiff(unfused, base), maxAbsDiff(fused, unfused)
		t.Logf("%s: LoRA changes the output by up to %.3g (max |out| %.3g); fused vs unfused max abs diff %.3g",
			m.name, effect, maxAbs(unfused), diff)
		if effect < 1e-2 {
			t.Errorf("%s: the adapters barely change the output (%g); the test would prove nothing", m.name, effect)
		}
		if diff > 1e-5*math.Max(1, maxAbs(unfused)) {
			t.Errorf("%s: fused and unfused outputs differ by %g", m.name, diff)
		}
		if err := a.Unfuse(fusedW); err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for _, mod := range a.Modules {
			w0, _, _ := m.model.Weights.Float32(mod.Name + ".weight")
			w1, _, _ := fusedW.Float32(mod.Name + ".weight")
			worst = math.Max(worst, maxAbsDiff(w0, w1))
		}
		t.Logf("%s: Fuse then Unfuse moves base weights by at most %.3g", m.name, worst)
		if worst > 1e-7 {
			t.Errorf("%s: Unfuse leaves weights %g away from the base", m.name, worst)
		}
	}
}

// TestDropoutMatchesTorch: a rank-1 adapter summing 4096 ones through
// lora_dropout(p=0.5) gives 2·(kept count): kept values are scaled by
// 1/(1-p), about half are kept, and the threaded RNG state draws a new mask
// on the next call; the gradient sees the same mask. TrainingLookup with
// dropout 0 needs no RNG.
func TestDropoutMatchesTorch(t *testing.T) {
	const n = 4096
	b := testBackend(t)
	shapes := map[string][]int{"proj.weight": {1, n}}
	a, err := lora.New(shapes, lora.Config{Rank: 1, Alpha: 1, Dropout: 0.5, Targets: []string{"proj"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	a.Weights.SetFloat32(lora.ParamA("proj"), ones, 1, n)
	a.Weights.SetFloat32(lora.ParamB("proj"), []float32{1}, 1, 1)
	base := nn.NewWeights()
	base.SetFloat32("proj.weight", make([]float32, n), 1, n)
	prog, err := nn.Compile(b, []*nn.Weights{base, a.Weights}, nn.Options{}, func(g []*nn.Params, xs []*Node) []*Node {
		rng := &lora.RNG{State: xs[1]}
		p := g[0].WithAdapters(a.TrainingLookup(g[1], rng))
		y := nn.Linear(p.Root("proj"), xs[0])
		grad := Gradient(ReduceAllSum(y), g[1].Root("proj").Param("lora_A.weight"))[0]
		return []*Node{y, rng.State, grad}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Finalize()
	state, err := RNGStateFromSeed(42)
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromFlatDataAndDimensions(ones, 1, n)
	var sums []float32
	for range 2 {
		outs, err := prog.Run(x, state)
		if err != nil {
			t.Fatal(err)
		}
		y, _, _ := nn.TensorFloat32(outs[0])
		state = outs[1]
		grad, _, _ := nn.TensorFloat32(outs[2])
		sum := float32(0)
		for _, v := range grad {
			if v != 0 && v != 2 {
				t.Fatalf("gradient of a dropped-out input is %v, want 0 or 2", v)
			}
			sum += v
		}
		if sum != y[0] {
			t.Errorf("gradient sums to %v, the output is %v: the backward pass saw another mask", sum, y[0])
		}
		kept := y[0] / 2
		t.Logf("dropout 0.5 kept %v of %d inputs", kept, n)
		if kept != float32(math.Round(float64(kept))) || math.Abs(float64(kept)/n-0.5) > 0.05 {
			t.Errorf("adapter output %v is not 2·(about %d/2 kept ones)", y[0], n)
		}
		sums = append(sums, y[0])
	}
	if sums[0] == sums[1] {
		t.Errorf("two steps drew the same dropout mask (sum %v)", sums[0])
	}

	a.Config.Dropout = 0
	if a.TrainingLookup(nil, nil) == nil { // no RNG needed without dropout
		t.Error("TrainingLookup without dropout returned no lookup")
	}
}

// TestGradientsReachOnlyTheAdapters: with the base UNet's weights embedded as
// graph constants, the loss differentiates with respect to the adapter
// weights alone; every adapter gets a gradient, and the largest entries of
// one Conv2d lora_A and one Linear lora_B match central finite differences.
func TestGradientsReachOnlyTheAdapters(t *testing.T) {
	b := testBackend(t)
	m := testModels(t)[0]
	a, err := lora.New(m.model.Config.ParamShapes(), lora.Config{Rank: 2, Alpha: 3}, 13)
	if err != nil {
		t.Fatal(err)
	}
	randomizeUp(t, a, 17, 0.1)
	names := a.Weights.Names()
	probe := randomTensor(rand.New(rand.NewPCG(19, 0)), 1, m.in[0].Shape().Dimensions...)
	opts := nn.Options{ConvIm2Col: true}
	lossOf := func(base, lp *nn.Params, xs []*Node) *Node {
		p := base.WithAdapters(a.Lookup(lp))
		out := unet.Forward(p.Root(""), m.model.Config, unet.Inputs{Sample: xs[0], Timesteps: xs[1], Context: xs[2]})
		return ReduceAllSum(Mul(out, Const(out.Graph(), probe)))
	}
	exec, err := NewExec(b, func(xs []*Node) []*Node {
		g := xs[0].Graph()
		baseNames := m.model.Weights.Names()
		consts := make([]*Node, len(baseNames))
		for i, w := range m.model.Weights.Tensors() {
			consts[i] = Const(g, w)
		}
		base := nn.NewParams(baseNames, consts, opts)
		lp := nn.NewParams(names, xs[3:], opts)
		loss := lossOf(base, lp, xs[:3])
		wrt := make([]*Node, len(names))
		for i, n := range names {
			wrt[i] = lp.Root("").Param(n)
		}
		return append([]*Node{loss}, Gradient(loss, wrt...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	run := func() []*tensors.Tensor {
		args := []any{m.in[0], m.in[1], m.in[2]}
		for _, tt := range a.Weights.Tensors() {
			args = append(args, tt)
		}
		outs, err := exec.Exec(args...)
		if err != nil {
			t.Fatal(err)
		}
		return outs
	}
	outs := run()
	grads := map[string][]float32{}
	for i, n := range names {
		g, _, err := nn.TensorFloat32(outs[1+i])
		if err != nil {
			t.Fatal(err)
		}
		if maxAbs(g) == 0 {
			t.Errorf("%s gets no gradient", n)
		}
		grads[n] = g
	}
	t.Logf("%s: all %d adapter tensors get gradients; the base is constant", m.name, len(names))

	lossAt := func(name string, i int, delta float32) float64 {
		data, dims, _ := a.Weights.Float32(name)
		data[i] += delta
		saved, _ := a.Weights.Get(name)
		a.Weights.SetFloat32(name, data, dims...)
		defer a.Weights.Set(name, saved)
		l, _, _ := nn.TensorFloat32(run()[0])
		return float64(l[0])
	}
	var conv, linear string
	for _, mod := range a.Modules {
		if mod.Conv() && conv == "" {
			conv = lora.ParamA(mod.Name)
		}
		if !mod.Conv() && linear == "" {
			linear = lora.ParamB(mod.Name)
		}
	}
	for _, name := range []string{conv, linear} {
		g := grads[name]
		best := 0
		for i := range g {
			if math.Abs(float64(g[i])) > math.Abs(float64(g[best])) {
				best = i
			}
		}
		const eps = 1e-2
		fd := (lossAt(name, best, eps) - lossAt(name, best, -eps)) / (2 * eps)
		t.Logf("%s[%d]: gradient %.5g, finite difference %.5g", name, best, g[best], fd)
		if math.Abs(fd-float64(g[best])) > 1e-2*math.Abs(fd)+1e-3 {
			t.Errorf("%s[%d]: gradient %g, finite difference %g", name, best, g[best], fd)
		}
	}
}
