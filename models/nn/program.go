package nn

import (
	"fmt"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
)

// freqsDType is the dtype embeddings are computed in (float32, as diffusers).
const freqsDType = dtypes.Float32

// BuildFn builds a graph from bound weight groups (one Params per group
// given to Compile, in order) and the extra inputs; it returns the outputs.
type BuildFn func(groups []*Params, inputs []*Node) []*Node

// Program is a compiled graph whose first parameters are one or more weight
// groups, fed in Names order, followed by per-call inputs.
type Program struct {
	exec   *Exec
	groups []*Weights
	names  [][]string
	opts   Options
}

// Compile prepares a program; the graph is built and compiled on the first
// Run for each new input shape. Every weight of every group must be used by
// build: a weight nothing asked for is reported by name.
func Compile(b compute.Backend, groups []*Weights, opts Options, build BuildFn) (*Program, error) {
	p := &Program{groups: groups, opts: opts}
	for _, w := range groups {
		p.names = append(p.names, w.Names())
	}
	exec, err := NewExec(b, func(all []*Node) []*Node {
		all = convertFloats(all, opts.ComputeDType)
		bound := make([]*Params, len(groups))
		offset := 0
		for i, names := range p.names {
			bound[i] = NewParams(names, all[offset:offset+len(names)], opts)
			offset += len(names)
		}
		outs := build(bound, all[offset:])
		for i, bp := range bound {
			if unused := bp.Unused(""); len(unused) > 0 {
				panic(fmt.Errorf("weight group %d: %d unexpected weights the model does not use: %s",
					i, len(unused), abbreviate(unused, 12)))
			}
		}
		return convertFloats(outs, dtypes.Float32)
	})
	if err != nil {
		return nil, err
	}
	p.exec = exec
	return p, nil
}

// Run executes the program on the inputs (host or device tensors) and
// returns the outputs. Graph-building panics come back as errors
// (backend.Catch: a panicked error keeps its chain).
func (p *Program) Run(inputs ...*tensors.Tensor) (outs []*tensors.Tensor, err error) {
	args := make([]any, 0, len(inputs)+64)
	for _, w := range p.groups {
		for _, t := range w.Tensors() {
			args = append(args, t)
		}
	}
	for _, t := range inputs {
		args = append(args, t)
	}
	if caught := backend.Catch(func() { outs, err = p.exec.Exec(args...) }); caught != nil {
		return nil, caught
	}
	return outs, err
}

// Finalize frees the compiled graphs.
func (p *Program) Finalize() { p.exec.Finalize() }

func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(", … (%d more)", len(names)-n)
}

// convertFloats converts float nodes to dtype (a no-op for the zero dtype).
func convertFloats(nodes []*Node, dtype dtypes.DType) []*Node {
	if dtype == dtypes.InvalidDType {
		return nodes
	}
	out := make([]*Node, len(nodes))
	for i, n := range nodes {
		if n.DType().IsFloat() && n.DType() != dtype {
			n = ConvertDType(n, dtype)
		}
		out[i] = n
	}
	return out
}
