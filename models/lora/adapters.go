package lora

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/models/nn"
)

// Adapters is a set of LoRA adapters for one base model: which layers they
// adapt and their weights on the host.
type Adapters struct {
	// Config is what the adapters were made with. For adapters read from a
	// file, Rank and Alpha are the most common ones (Modules has each
	// adapter's own) and Targets the adapted module names.
	Config Config
	// Modules are the adapted layers, sorted by name.
	Modules []Module
	// Weights holds "<module>.lora_A.weight" and "<module>.lora_B.weight"
	// for every module: the trainable group a graph binds with Lookup.
	Weights *nn.Weights

	index map[string]int
}

// ParamA and ParamB are the names of a module's adapter weights in Weights
// (PEFT's state-dict names without an adapter name).
func ParamA(module string) string { return module + ".lora_A.weight" }

// ParamB: see ParamA.
func ParamB(module string) string { return module + ".lora_B.weight" }

// New creates adapters for the layers of a base model (its weight schema,
// unet.Config.ParamShapes) that cfg targets. A is drawn like PyTorch's
// default Linear/Conv2d init, Kaiming-uniform with a=√5, i.e.
// U(-1/√fan_in, 1/√fan_in) with fan_in = in·kh·kw, from a Go PCG generator
// seeded with seed (torch's RNG stream is not reproduced); B is zero, so the
// adapted model starts equal to the base model.
func New(baseShapes map[string][]int, cfg Config, seed int64) (*Adapters, error) {
	mods, err := Modules(baseShapes, cfg)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6c6f7261)) // "lora"
	w := nn.NewWeights()
	for _, m := range mods {
		ad := m.AShape()
		w.SetFloat32(ParamA(m.Name), nn.KaimingUniform(rng, ad), ad...)
		bd := m.BShape()
		w.SetFloat32(ParamB(m.Name), make([]float32, size(bd)), bd...)
	}
	return newAdapters(cfg, mods, w), nil
}

func newAdapters(cfg Config, mods []Module, w *nn.Weights) *Adapters {
	a := &Adapters{Config: cfg, Modules: mods, Weights: w, index: make(map[string]int, len(mods))}
	for i, m := range mods {
		a.index[m.Name] = i
	}
	return a
}

// Module returns the adapter of a module, if it has one.
func (a *Adapters) Module(name string) (Module, bool) {
	i, ok := a.index[name]
	if !ok {
		return Module{}, false
	}
	return a.Modules[i], true
}

// NumTrainable is the number of adapter parameters.
func (a *Adapters) NumTrainable() int {
	n := 0
	for _, m := range a.Modules {
		n += m.NumParams()
	}
	return n
}

// Lookup binds a compiled copy of Weights (p, one weight group of an
// nn.Compile'd graph) to the adapter hook of nn.Params.WithAdapters. The
// adapters run without dropout: use it for sampling, for the target pass of
// LoRA distillation, and for training when Config.Dropout is 0.
func (a *Adapters) Lookup(p *nn.Params) func(module string) nn.Adapter {
	return a.lookup(p, nil)
}

// RNG carries GoMLX's random-number state (graph.RNGStateShape) through a
// graph for lora_dropout. Every adapter that drops out advances State; after
// building the graph, return State as an output and feed it to the next step.
type RNG struct{ State *Node }

// TrainingLookup is Lookup with lora_dropout applied to each adapter's input
// (PEFT's nn.Dropout: zero with probability p, scale the rest by 1/(1-p)),
// drawing from rng. With Config.Dropout = 0 it is Lookup and rng is unused.
func (a *Adapters) TrainingLookup(p *nn.Params, rng *RNG) func(module string) nn.Adapter {
	if a.Config.Dropout <= 0 {
		return a.lookup(p, nil)
	}
	if rng == nil || rng.State == nil {
		panic(fmt.Errorf("lora: dropout %v needs a random-number state", a.Config.Dropout))
	}
	return a.lookup(p, rng)
}

func (a *Adapters) lookup(p *nn.Params, rng *RNG) func(module string) nn.Adapter {
	return func(module string) nn.Adapter {
		i, ok := a.index[module]
		if !ok {
			return nil // a nil interface: the layer runs unadapted
		}
		return &layer{m: a.Modules[i], s: p.Root(module), rng: rng, dropout: a.Config.Dropout}
	}
}

// layer is one adapter bound to graph nodes.
type layer struct {
	m       Module
	s       nn.Scope // the adapter weights, under the module's name
	rng     *RNG     // nil: no dropout
	dropout float64
}

// Apply adds scale·B(A(dropout(x))) to the layer output y, as PEFT's
// lora.Linear and lora.Conv2d forward do.
func (l *layer) Apply(s nn.Scope, x, y *Node, conv *nn.ConvParams) *Node {
	if (conv != nil) != l.m.Conv() {
		panic(fmt.Errorf("lora %s: adapter is for a %s layer, the model calls it as a %s",
			l.m.Name, kind(l.m.Conv()), kind(conv != nil)))
	}
	A, B := l.s.Param("lora_A.weight"), l.s.Param("lora_B.weight")
	if x.DType() != A.DType() {
		x = ConvertDType(x, A.DType())
	}
	if l.rng != nil {
		x = dropout(l.rng, x, l.dropout)
	}
	var h *Node
	if conv == nil {
		h = nn.LinearNoBias(nn.LinearNoBias(x, A), B)
	} else {
		im2col := s.Params().Options().ConvIm2Col
		h = nn.Conv2dWith(x, A, *conv, im2col)
		h = nn.Conv2dWith(h, B, nn.ConvParams{Stride: 1}, im2col)
	}
	h = MulScalar(h, l.m.Scale())
	if h.DType() != y.DType() {
		h = ConvertDType(h, y.DType())
	}
	return Add(y, h)
}

func kind(conv bool) string {
	if conv {
		return "Conv2d"
	}
	return "Linear"
}

// dropout is torch.nn.functional.dropout in training mode: each value is
// zeroed with probability p and the rest are scaled by 1/(1-p).
func dropout(rng *RNG, x *Node, p float64) *Node {
	var u *Node
	rng.State, u = RandomUniform(rng.State, shapes.Make(x.DType(), x.Shape().Dimensions...))
	drop := LessThan(u, Scalar(x.Graph(), x.DType(), p))
	return Where(drop, ZerosLike(x), MulScalar(x, 1/(1-p)))
}
