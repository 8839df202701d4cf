package nn

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
)

// Options change how layers lower to graph operations, not what they compute.
type Options struct {
	// ConvIm2Col lowers convolutions to im2col + matmul. On GoMLX's pure-Go
	// backend this is an order of magnitude faster than its direct
	// convolution loop (measured 13x on a 128-channel 3x3 conv); XLA has its
	// own fast convolution and should use the native op.
	ConvIm2Col bool
	// GradientCheckpointing recomputes each block's activations in the
	// backward pass instead of keeping them, trading compute for memory.
	GradientCheckpointing bool
	// ComputeDType, when set, is the float dtype graphs compute in: float
	// weights and inputs are converted to it on entry and float outputs back
	// to float32 on exit. Zero means float32.
	ComputeDType dtypes.DType
	// FusedAttention lets forward-only passes (Params.ForwardOnly) run
	// attention as the backend's fused scaled dot-product attention, which
	// never materializes the N×M scores. ForBackend sets it for XLA only:
	// the Go backend's fused forward (compute v0.1.14) measured 25–100×
	// slower than the products and softmax below, at head dims 32, 40
	// and 64.
	FusedAttention bool
	// Cost, when set, counts the product FLOPs each Program compiled with
	// these options runs (benchmarks); it changes nothing computed.
	Cost *Cost
	// NoDonation makes Program.Donate a no-op: every Run keeps its inputs'
	// buffers. Benchmarks set it to measure what donation saves; it changes
	// nothing computed.
	NoDonation bool
}

// ForBackend returns the lowerings that run fastest on the GoMLX backend
// named name ("go" or "xla"): on the pure-Go backend im2col convolutions;
// on XLA its own convolutions and fused attention in forward-only passes.
//
// Splitting each UNet call and each attention into one independent part
// per core, which golcm did for compute v0.1.2's single-threaded softmax,
// no longer pays on v0.1.14 (parallel softmax): a small-UNet forward,
// forward+backward and distillation step measured 0.99×, 1.22× and 0.91×
// unsplit/split (ranges 0.97–1.62, 0.83–1.38, 0.81–1.03; 3 alternating
// rounds), so the split is gone.
func ForBackend(name string) Options {
	if name != "go" {
		return Options{FusedAttention: true}
	}
	return Options{ConvIm2Col: true}
}

// Adapter adds a low-rank update to a Linear or Conv2d layer's output; see
// package lora. x is the layer's input, y its output without the adapter.
type Adapter interface {
	Apply(s Scope, x, y *Node, conv *ConvParams) *Node
}

// Params binds weight names to the graph nodes of one graph.
type Params struct {
	nodes    map[string]*Node
	used     map[string]bool
	opts     Options
	adapters func(module string) Adapter
	// forwardOnly: no gradient is taken through this view (ForwardOnly).
	forwardOnly bool
	// cast, when set, is the dtype Param converts float weights to (Cast);
	// casts keeps one conversion per weight, shared by the views of a Cast.
	cast  dtypes.DType
	casts map[string]*Node
}

// NewParams binds nodes[i] to names[i].
func NewParams(names []string, nodes []*Node, opts Options) *Params {
	p := &Params{nodes: make(map[string]*Node, len(names)), used: map[string]bool{}, opts: opts}
	for i, n := range names {
		p.nodes[n] = nodes[i]
	}
	return p
}

// WithAdapters returns a view of the same parameters whose Linear and Conv2d
// layers consult lookup for an adapter. A nil lookup disables adapters (the
// teacher pass of LoRA distillation shares the base weights this way).
func (p *Params) WithAdapters(lookup func(module string) Adapter) *Params {
	q := *p
	q.adapters = lookup
	return &q
}

// ForwardOnly returns a view of the same parameters for a pass that takes
// no gradient (a teacher or target pass, sampling), whose attention may then
// use the backend's fused forward (Options.FusedAttention), and whose
// layer and group norms and biased linear layers run as the backend's
// fused ops. A gradient through such a pass is still right, through their
// decomposed forms, which it then also computes (except through
// SplitLastAxis, whose forward-only Pads have none).
func (p *Params) ForwardOnly() *Params {
	q := *p
	q.forwardOnly = true
	return &q
}

// Cast returns a view of the same parameters whose float weights read as
// dtype: mixed precision runs a float32 master copy (the trained weights,
// an EMA target) in a half-precision forward this way, as torch's autocast
// runs float32 modules in bfloat16. The gradient of a weight read through
// the view comes back in the weight's own dtype (ConvertDType's gradient).
// Weights already stored in dtype are read as they are. The zero dtype
// (or Float32 on float32 weights) is the identity.
func (p *Params) Cast(dtype dtypes.DType) *Params {
	if dtype == dtypes.InvalidDType || dtype == p.cast {
		return p
	}
	q := *p
	q.cast, q.casts = dtype, map[string]*Node{}
	return &q
}

// Options returns the lowering options.
func (p *Params) Options() Options { return p.opts }

// Root returns the scope at the top of the name tree, or under prefix.
func (p *Params) Root(prefix string) Scope { return Scope{p: p, path: prefix} }

// Unused lists bound names no layer asked for, sorted under prefix.
func (p *Params) Unused(prefix string) []string {
	var out []string
	for n := range p.nodes {
		if strings.HasPrefix(n, prefix) && !p.used[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Scope is a position in the weight-name tree ("mid_block.resnets.0").
type Scope struct {
	p    *Params
	path string
}

// In descends into a child: In("resnets", 0) is "…resnets.0".
func (s Scope) In(parts ...any) Scope {
	path := s.path
	for _, part := range parts {
		var name string
		switch v := part.(type) {
		case string:
			name = v
		case int:
			name = strconv.Itoa(v)
		default:
			name = fmt.Sprint(v)
		}
		if path == "" {
			path = name
		} else {
			path += "." + name
		}
	}
	return Scope{p: s.p, path: path}
}

// Path is the dotted module path of this scope.
func (s Scope) Path() string { return s.path }

// Params returns the parameter binding this scope reads from.
func (s Scope) Params() *Params { return s.p }

func (s Scope) full(name string) string {
	if s.path == "" {
		return name
	}
	return s.path + "." + name
}

// Has reports whether the weight name exists under this scope.
func (s Scope) Has(name string) bool {
	_, ok := s.p.nodes[s.full(name)]
	return ok
}

// Param returns the node of a weight; a missing weight panics with its full
// name (callers convert panics to errors at package boundaries).
func (s Scope) Param(name string) *Node {
	full := s.full(name)
	n, ok := s.p.nodes[full]
	if !ok {
		panic(fmt.Errorf("missing weight %q", full))
	}
	s.p.used[full] = true
	if s.p.cast == dtypes.InvalidDType || !n.DType().IsFloat() || n.DType() == s.p.cast {
		return n
	}
	if c, ok := s.p.casts[full]; ok {
		return c
	}
	c := ConvertDType(n, s.p.cast)
	s.p.casts[full] = c
	return c
}

// Optional returns the node of a weight, or nil when it does not exist.
func (s Scope) Optional(name string) *Node {
	if !s.Has(name) {
		return nil
	}
	return s.Param(name)
}

func (s Scope) adapter() Adapter {
	if s.p.adapters == nil {
		return nil
	}
	return s.p.adapters(s.path)
}
