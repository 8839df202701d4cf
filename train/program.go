package train

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/nn"
)

// Group is a named weight group fed to a program.
type Group struct {
	Name    string
	Weights *nn.Weights
}

// BuildFn builds a program's graph from its weight groups and inputs, by
// name, and returns its outputs by name.
type BuildFn func(groups map[string]*nn.Params, inputs map[string]*Node) map[string]*Node

// Program is a compiled graph whose inputs and outputs are named: the
// weight groups and the per-call inputs go in by name, the outputs come
// back by name. Positions exist only inside (nn.Program's parameter order).
type Program struct {
	prog    *nn.Program
	groups  []string // the weight groups' names, in nn.Program's order
	inputs  []string
	outputs []string // sorted; fixed by the first build
}

// Compile prepares a program with the given groups and input names; the
// graph is built on the first Run for each new input shape.
func Compile(b compute.Backend, groups []Group, inputs []string, opts nn.Options, build BuildFn) (*Program, error) {
	p := &Program{inputs: slices.Clone(inputs)}
	weights := make([]*nn.Weights, len(groups))
	for i, g := range groups {
		weights[i] = g.Weights
		p.groups = append(p.groups, g.Name)
	}
	var err error
	p.prog, err = nn.Compile(b, weights, opts, func(bound []*nn.Params, in []*Node) []*Node {
		byGroup := make(map[string]*nn.Params, len(groups))
		for i, g := range groups {
			byGroup[g.Name] = bound[i]
		}
		byName := make(map[string]*Node, len(in))
		for i, name := range p.inputs {
			byName[name] = in[i]
		}
		out := build(byGroup, byName)
		names := make([]string, 0, len(out))
		for name := range out {
			names = append(names, name)
		}
		sort.Strings(names)
		if p.outputs != nil && !slices.Equal(p.outputs, names) {
			panic(fmt.Errorf("program outputs changed between builds: %v, then %v", p.outputs, names))
		}
		p.outputs = names
		nodes := make([]*Node, len(names))
		for i, name := range names {
			nodes[i] = out[name]
		}
		return nodes
	})
	return p, err
}

// Donate hands the buffers of the named weight groups to each Run (see
// nn.Program.Donate): the caller replaces them with the run's outputs, so a
// step holds one copy of the weights it updates, not the old and the new.
// Names of groups the program does not have are ignored.
func (p *Program) Donate(groups ...string) {
	for _, name := range groups {
		p.prog.Donate(slices.Index(p.groups, name))
	}
}

// Run executes the program; in must hold exactly the input names Compile
// was given.
func (p *Program) Run(in map[string]*tensors.Tensor) (map[string]*tensors.Tensor, error) {
	args := make([]*tensors.Tensor, len(p.inputs))
	var missing []string
	for i, name := range p.inputs {
		if args[i] = in[name]; args[i] == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("program inputs missing: %s", strings.Join(missing, ", "))
	}
	if len(in) != len(p.inputs) {
		var extra []string
		for name := range in {
			if !slices.Contains(p.inputs, name) {
				extra = append(extra, name)
			}
		}
		sort.Strings(extra)
		return nil, fmt.Errorf("program inputs not expected: %s", strings.Join(extra, ", "))
	}
	outs, err := p.prog.Run(args...)
	if err != nil {
		return nil, err
	}
	named := make(map[string]*tensors.Tensor, len(outs))
	for i, name := range p.outputs {
		named[name] = outs[i]
	}
	return named, nil
}

// Finalize frees the compiled graphs.
func (p *Program) Finalize() { p.prog.Finalize() }

// WeightOutput is the output name of weight name of group: the updated
// weights of a group come back as group/name.
func WeightOutput(group, name string) string { return group + "/" + name }
