package unet

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// TestGradientCheckpointingKeepsGradients: recomputing blocks in the
// backward pass changes memory, not the gradients.
func TestGradientCheckpointingKeepsGradients(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	weights := nn.RandomWeights(cfg.ParamShapes(), 5, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	randn := func(dims ...int) *tensors.Tensor { return nn.NormalTensor(rng, dims...) }
	sample, context := randn(2, 4, 8, 8), randn(2, 7, cfg.CrossDims[0])
	timesteps := tensors.FromFlatDataAndDimensions([]int64{10, 900}, 2)
	grads := func(checkpointing bool) [][]float32 {
		opts := nn.Options{ConvIm2Col: true, GradientCheckpointing: checkpointing}
		prog, err := nn.Compile(b, []*nn.Weights{weights}, opts, func(g []*nn.Params, in []*Node) []*Node {
			root := g[0].Root("")
			out := Forward(root, cfg, Inputs{Sample: in[0], Timesteps: in[1], Context: in[2]})
			params := make([]*Node, 0, weights.Len())
			for _, name := range weights.Names() {
				params = append(params, root.Param(name))
			}
			return Gradient(ReduceAllMean(Square(out)), params...)
		})
		if err != nil {
			t.Fatal(err)
		}
		outs, err := prog.Run(sample, timesteps, context)
		if err != nil {
			t.Fatal(err)
		}
		var all [][]float32
		for _, o := range outs {
			x, _, _ := nn.TensorFloat32(o)
			all = append(all, x)
		}
		return all
	}
	plain, checkpointed := grads(false), grads(true)
	worst := 0.0
	for i := range plain {
		for j := range plain[i] {
			worst = math.Max(worst, math.Abs(float64(plain[i][j]-checkpointed[i][j])))
		}
	}
	t.Logf("max |grad difference| over %d tensors: %g", len(plain), worst)
	if worst > 1e-6 {
		t.Errorf("gradient checkpointing changed gradients by %g", worst)
	}
}
