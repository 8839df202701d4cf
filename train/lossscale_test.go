package train

import (
	"math"
	"slices"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// scaledRegression is regression's task with loss scaling (nil: none).
func scaledRegression(t *testing.T, ls *LossScaling, w0 []float32) *Trainer {
	t.Helper()
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	w := nn.NewWeights()
	w.SetFloat32("w", slices.Clone(w0), len(w0))
	tr, err := New(b, Task{
		Trained: w, EMA: true, Inputs: []string{"x", "y"}, LossScaling: ls,
		Optimizer: AdamW{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.5, EMADecay: 0.9},
		Loss: func(g map[string]*nn.Params, in map[string]*Node) (*Node, map[string]*Node) {
			pred := Mul(g[TrainedGroup].Root("").Param("w"), in["x"])
			return ReduceAllMean(Square(Sub(pred, in["y"]))), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func hostValues(t *testing.T, ws ...*nn.Weights) [][]float32 {
	t.Helper()
	var out [][]float32
	for _, w := range ws {
		v, _, err := w.Float32("w")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestLossScalingSkipsOverflowAndGrows forces the scaled gradient to
// overflow float32: with x = 2e17 the loss (~7e34) and its unscaled
// gradient 2·w·x²/3 (~3e34) are finite, but times the scale 65536 the
// gradient is ~2e39, past float32's 3.4e38. That step must be skipped in
// the graph (weights, both Adam moments and the EMA bit-identical), halve
// the scale and be counted, and leave AdamW's step count alone: the three
// good steps after it then give exactly the weights of an unscaled run of
// those three steps alone (scaling by powers of two is exact), and the
// third doubles the scale (growth interval 3).
func TestLossScalingSkipsOverflowAndGrows(t *testing.T) {
	w0 := []float32{1, -2, 0.5}
	tr := scaledRegression(t, &LossScaling{InitScale: 65536, GrowthInterval: 3}, w0)
	plain := scaledRegression(t, nil, w0)
	feed := func(x ...float32) map[string]*tensors.Tensor {
		return map[string]*tensors.Tensor{"x": vec(x...), "y": vec(1, 1, 1)}
	}
	before := hostValues(t, tr.Trained, tr.EMA, tr.AdamM, tr.AdamV)
	res, err := tr.Step(feed(2e17, 2e17, 2e17), 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Skipped || !res.Applied || !res.WeightsFinite || math.IsInf(float64(res.Loss), 0) {
		t.Fatalf("overflowing step: skipped %v, applied %v, weights finite %v, loss %v; want true, true, true, finite",
			res.Skipped, res.Applied, res.WeightsFinite, res.Loss)
	}
	after := hostValues(t, tr.Trained, tr.EMA, tr.AdamM, tr.AdamV)
	for i, group := range []string{"trained", "ema", "adam_m", "adam_v"} {
		if !slices.Equal(before[i], after[i]) {
			t.Errorf("the skipped step changed %s: %v → %v", group, before[i], after[i])
		}
	}
	if want := (ScalerState{Scale: 32768, GoodSteps: 0, Skipped: 1}); tr.Scaler != want || tr.Steps != 1 || tr.OptimizerSteps() != 0 {
		t.Errorf("after the overflow: scaler %+v, steps %d, optimizer steps %d; want %+v, 1, 0", tr.Scaler, tr.Steps, tr.OptimizerSteps(), want)
	}

	for step := range 3 {
		x, lr := feed(2, 1, -3), 0.1/float64(step+1)
		r, err := tr.Step(x, lr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Step(x, lr); err != nil {
			t.Fatal(err)
		}
		if r.Skipped {
			t.Fatalf("good step %d was skipped", step+1)
		}
	}
	got, want := hostValues(t, tr.Trained, tr.EMA, tr.AdamM, tr.AdamV), hostValues(t, plain.Trained, plain.EMA, plain.AdamM, plain.AdamV)
	for i, group := range []string{"trained", "ema", "adam_m", "adam_v"} {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("%s after the skip and 3 good steps: %v, an unscaled run of the 3 steps: %v", group, got[i], want[i])
		}
	}
	if want := (ScalerState{Scale: 65536, GoodSteps: 0, Skipped: 1}); tr.Scaler != want || tr.OptimizerSteps() != 3 {
		t.Errorf("after 3 good steps: scaler %+v, optimizer steps %d; want %+v, 3", tr.Scaler, tr.OptimizerSteps(), want)
	}
}
