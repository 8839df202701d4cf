package unet

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// probeTiny runs CompileProbe with gradients on the tiny UNet (random
// weights from seed, batch random inputs at 8×8) under opts: the loss
// mean(out²) first, then the gradient of every weight.
func probeTiny(t *testing.T, opts nn.Options, seed uint64, batch int) [][]float32 {
	t.Helper()
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	weights := nn.RandomWeights(cfg.ParamShapes(), seed, 1)
	in := RandomInputs(rand.New(rand.NewPCG(seed, 1)), cfg, batch, 8)
	prog, err := CompileProbe(b, cfg, weights, opts, true)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := prog.Run(in.Sample, in.Timesteps, in.Context)
	if err != nil {
		t.Fatal(err)
	}
	all := make([][]float32, len(outs))
	for i, o := range outs {
		all[i], _, _ = nn.TensorFloat32(o)
	}
	return all
}

// maxGradDiff is the largest |a−b| over the gradients (all but the loss)
// and the largest |a| among them.
func maxGradDiff(a, b [][]float32) (worst, scale float64) {
	for i := 1; i < len(a); i++ {
		for j := range a[i] {
			worst = math.Max(worst, math.Abs(float64(a[i][j]-b[i][j])))
			scale = math.Max(scale, math.Abs(float64(a[i][j])))
		}
	}
	return worst, scale
}

// TestGradientCheckpointingKeepsGradients: recomputing blocks in the
// backward pass changes memory, not the gradients.
func TestGradientCheckpointingKeepsGradients(t *testing.T) {
	plain := probeTiny(t, nn.Options{ConvIm2Col: true}, 5, 2)
	checkpointed := probeTiny(t, nn.Options{ConvIm2Col: true, GradientCheckpointing: true}, 5, 2)
	worst, _ := maxGradDiff(plain, checkpointed)
	t.Logf("max |grad difference| over %d tensors: %g", len(plain)-1, worst)
	if worst > 1e-6 {
		t.Errorf("gradient checkpointing changed gradients by %g", worst)
	}
}
