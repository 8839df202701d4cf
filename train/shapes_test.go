package train

import (
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// TestStepCompilesOncePerShape: batches of alternating shapes (what aspect-ratio buckets feed) build
// and compile the step's graph once per shape, then reuse it: the loss graph is built exactly as
// many times as there are distinct input shapes, whatever the number of steps.
func TestStepCompilesOncePerShape(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	w := nn.NewWeights()
	w.SetFloat32("w", []float32{0.5, 0.25}, 2)
	builds := 0
	tr, err := New(b, Task{
		Trained: w, Inputs: []string{"x"}, Optimizer: AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
		Loss: func(g map[string]*nn.Params, in map[string]*Node) (*Node, map[string]*Node) {
			builds++
			s := ReduceAllSum(g[TrainedGroup].Root("").Param("w"))
			return ReduceAllMean(Square(Mul(s, in["x"]))), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	shapes := [][]int{{2, 3, 4}, {2, 4, 3}, {2, 3, 4}, {2, 2, 6}, {2, 4, 3}, {2, 3, 4}, {2, 2, 6}}
	for i, dims := range shapes {
		x := tensors.FromFlatDataAndDimensions(make([]float32, dims[0]*dims[1]*dims[2]), dims...)
		if _, err := tr.Step(map[string]*tensors.Tensor{"x": x}, 1e-3); err != nil {
			t.Fatalf("step %d %v: %v", i, dims, err)
		}
	}
	if builds != 3 {
		t.Errorf("%d steps over 3 shapes built the step graph %d times, want 3", len(shapes), builds)
	}
}
