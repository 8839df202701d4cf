package unet

import (
	"math"
	"math/rand/v2"
	"testing"

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
	in := RandomInputs(rand.New(rand.NewPCG(1, 1)), cfg, 2, 8)
	grads := func(checkpointing bool) [][]float32 {
		opts := nn.Options{ConvIm2Col: true, GradientCheckpointing: checkpointing}
		prog, err := CompileProbe(b, cfg, weights, opts, true)
		if err != nil {
			t.Fatal(err)
		}
		outs, err := prog.Run(in.Sample, in.Timesteps, in.Context)
		if err != nil {
			t.Fatal(err)
		}
		var all [][]float32
		for _, o := range outs[1:] {
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
