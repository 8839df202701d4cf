package nn

import (
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
)

// TestProgramDonatesOnlyUnsharedTensors: a donated group's own tensor is
// handed to the graph (invalid after Run), a tensor it shares with a group
// not donated is kept, and the outputs are the sum of all three weights.
func TestProgramDonatesOnlyUnsharedTensors(t *testing.T) {
	for _, noDonation := range []bool{false, true} {
		checkDonation(t, noDonation)
	}
}

// checkDonation runs the donation test; with Options.NoDonation the own
// tensor must survive the Run.
func checkDonation(t *testing.T, noDonation bool) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	shared := tensors.FromFlatDataAndDimensions([]float32{1, 2}, 2)
	own := tensors.FromFlatDataAndDimensions([]float32{10, 20}, 2)
	frozen, trained := NewWeights(), NewWeights()
	frozen.Set("s", shared)
	trained.Set("s", shared)
	trained.Set("w", own)
	p, err := Compile(b, []*Weights{frozen, trained}, Options{NoDonation: noDonation}, func(g []*Params, in []*Node) []*Node {
		return []*Node{Add(Add(g[0].Root("").Param("s"), g[1].Root("").Param("s")), Add(g[1].Root("").Param("w"), in[0]))}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Finalize()
	p.Donate(1)
	outs, err := p.Run(tensors.FromFlatDataAndDimensions([]float32{100, 200}, 2))
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := TensorFloat32(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{112, 224}; !slices.Equal(got, want) {
		t.Errorf("outputs %v, want %v", got, want)
	}
	if !shared.Ok() {
		t.Error("the tensor shared with the group not donated was donated")
	}
	if own.Ok() != noDonation {
		t.Errorf("NoDonation %v: the donated group's own tensor valid after Run: %v", noDonation, own.Ok())
	}
}
