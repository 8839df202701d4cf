package nn

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
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
	exec     *Exec
	backend  compute.Backend
	groups   []*Weights
	names    [][]string
	opts     Options
	donate   []bool // per group: Run donates its buffers (see Donate)
	onDevice bool   // the weights were moved to the device (toDevice)

	mu    sync.Mutex
	flops map[string]float64 // product FLOPs of each compiled graph, by input shapes (opts.Cost)
}

// Compile prepares a program; the graph is built and compiled on the first
// Run for each new input shape. Every weight of every group must be used by
// build: a weight nothing asked for is reported by name.
func Compile(b compute.Backend, groups []*Weights, opts Options, build BuildFn) (*Program, error) {
	p := &Program{backend: b, groups: groups, opts: opts, donate: make([]bool, len(groups)), flops: map[string]float64{}}
	for _, w := range groups {
		p.names = append(p.names, w.Names())
	}
	exec, err := NewExec(b, func(all []*Node) []*Node {
		offset := 0
		for _, names := range p.names {
			offset += len(names)
		}
		key := shapesKey(all[offset:])
		all = convertFloats(all, opts.ComputeDType)
		bound := make([]*Params, len(groups))
		offset = 0
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
		outs = convertFloats(outs, dtypes.Float32)
		if opts.Cost != nil {
			f := GraphFLOPs(outs)
			p.mu.Lock()
			p.flops[key] = f
			p.mu.Unlock()
		}
		return outs
	})
	if err != nil {
		return nil, err
	}
	p.exec = exec
	return p, nil
}

// Donate marks weight groups (by their index in Compile's groups; negative
// indices are ignored) whose buffers each Run hands to the compiled graph,
// which may then reuse them for its outputs: a step that returns the new
// weights, optimizer moments or EMA target does not hold the old and the
// new copy at once. After Run the donated tensors are invalid and the
// caller must replace them with the outputs; after a failed Run they are
// lost. A tensor that is also in a group not donated is never donated.
// With Options.NoDonation nothing is donated.
func (p *Program) Donate(groups ...int) {
	if p.opts.NoDonation {
		return
	}
	for _, g := range groups {
		if g >= 0 {
			p.donate[g] = true
		}
	}
}

// Run executes the program on the inputs (host or device tensors) and
// returns the outputs. Graph-building panics come back as errors
// (backend.Catch: a panicked error keeps its chain).
func (p *Program) Run(inputs ...*tensors.Tensor) (outs []*tensors.Tensor, err error) {
	groups, err := p.groupTensors()
	if err != nil {
		return nil, err
	}
	if !p.onDevice {
		if err := p.toDevice(groups); err != nil {
			return nil, err
		}
	}
	// kept holds the tensors of groups not donated, which a donated group
	// may share; with nothing donated there is nothing to look up.
	var kept map[*tensors.Tensor]bool
	if slices.Contains(p.donate, true) {
		kept = map[*tensors.Tensor]bool{}
		for i, ts := range groups {
			if !p.donate[i] {
				for _, t := range ts {
					kept[t] = true
				}
			}
		}
	}
	n := len(inputs)
	for _, ts := range groups {
		n += len(ts)
	}
	args := make([]any, 0, n)
	for i, ts := range groups {
		for _, t := range ts {
			if !p.donate[i] || kept[t] {
				args = append(args, t)
				continue
			}
			buf, err := DonateTensorBuffer(t, p.backend, 0)
			if err != nil {
				return nil, fmt.Errorf("donating a weight buffer: %w", err)
			}
			args = append(args, buf)
		}
	}
	for _, t := range inputs {
		args = append(args, t)
	}
	if caught := backend.Catch(func() { outs, err = p.exec.Exec(args...) }); caught != nil {
		return nil, caught
	}
	if err == nil && p.opts.Cost != nil {
		p.mu.Lock()
		f := p.flops[shapesKey(inputs)]
		p.mu.Unlock()
		p.opts.Cost.add(f)
	}
	return outs, err
}

// groupTensors is each group's tensors in the order the graph was compiled
// with (Names at Compile): the caller may have replaced tensors since, but
// not removed a name.
func (p *Program) groupTensors() ([][]*tensors.Tensor, error) {
	out := make([][]*tensors.Tensor, len(p.groups))
	for i, w := range p.groups {
		out[i] = make([]*tensors.Tensor, len(p.names[i]))
		for j, name := range p.names[i] {
			t, ok := w.Get(name)
			if !ok {
				return nil, fmt.Errorf("weight group %d: weight %s was removed after Compile", i, name)
			}
			out[i][j] = t
		}
	}
	return out, nil
}

// toDevice moves the weights to the backend before the first run, one
// tensor at a time, collecting the host copies every 256 MiB. Left to the
// first Exec, every weight would be copied before the garbage collector
// runs (it waits for the heap to double): an SD 1.5 UNet then peaks with
// its 3.4 GB twice over.
func (p *Program) toDevice(groups [][]*tensors.Tensor) error {
	pending := 0
	for _, ts := range groups {
		for _, t := range ts {
			if t.IsOnDevice(0) {
				continue
			}
			if err := t.MaterializeOnDevice(p.backend, true, 0); err != nil {
				return fmt.Errorf("moving a weight to the backend: %w", err)
			}
			if pending += int(t.Memory()); pending > 256<<20 {
				runtime.GC()
				pending = 0
			}
		}
	}
	p.onDevice = true
	return nil
}

// shapesKey names a graph by its per-call input shapes: the build function
// keys its FLOPs by the input nodes, Run looks them up by the tensors.
func shapesKey[T interface{ Shape() shapes.Shape }](inputs []T) string {
	s := make([]string, len(inputs))
	for i, n := range inputs {
		s[i] = n.Shape().String()
	}
	return strings.Join(s, ";")
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
