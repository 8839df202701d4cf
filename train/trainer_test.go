package train

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// regression is a task with a closed-form gradient: loss = mean((w·x - y)²)
// over the elements of one weight vector w.
func regression(t *testing.T, opt AdamW, ema bool, w0 []float32) *Trainer {
	t.Helper()
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	w := nn.NewWeights()
	w.SetFloat32("w", append([]float32(nil), w0...), len(w0))
	tr, err := New(b, Task{
		Trained: w, EMA: ema, Inputs: []string{"x", "y"}, Optimizer: opt,
		Loss: func(g map[string]*nn.Params, in map[string]*Node) (*Node, map[string]*Node) {
			pred := Mul(g[TrainedGroup].Root("").Param("w"), in["x"])
			return ReduceAllMean(Square(Sub(pred, in["y"]))), map[string]*Node{"pred": pred}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func vec(x ...float32) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(x, len(x)) }

// TestAdamWMatchesTorchArithmetic: two clipped AdamW steps with an EMA give
// the weights torch.optim.AdamW and clip_grad_norm_ give, computed here in
// float64 from the closed-form gradient 2·x·(w·x - y)/n.
func TestAdamWMatchesTorchArithmetic(t *testing.T) {
	opt := AdamW{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 0.5, EMADecay: 0.9}
	w0, x, y := []float32{1, -2, 0.5}, []float32{2, 1, -3}, []float32{1, 1, 1}
	tr := regression(t, opt, true, w0)

	w, m, v, ema := make([]float64, 3), make([]float64, 3), make([]float64, 3), make([]float64, 3)
	for i := range w {
		w[i], ema[i] = float64(w0[i]), float64(w0[i])
	}
	for step, lr := range []float64{0.1, 0.05} {
		res, err := tr.Step(map[string]*tensors.Tensor{"x": vec(x...), "y": vec(y...)}, lr)
		if err != nil {
			t.Fatal(err)
		}
		g, norm := make([]float64, 3), 0.0
		for i := range g {
			g[i] = 2 * float64(x[i]) * (w[i]*float64(x[i]) - float64(y[i])) / 3
			norm += g[i] * g[i]
		}
		norm = math.Sqrt(norm)
		coef := math.Min(opt.MaxGradNorm/(norm+1e-6), 1)
		n := float64(step + 1)
		for i := range w {
			gi := g[i] * coef
			w[i] *= 1 - lr*opt.WeightDecay
			m[i] = opt.Beta1*m[i] + (1-opt.Beta1)*gi
			v[i] = opt.Beta2*v[i] + (1-opt.Beta2)*gi*gi
			w[i] -= lr / (1 - math.Pow(opt.Beta1, n)) * m[i] / (math.Sqrt(v[i])/math.Sqrt(1-math.Pow(opt.Beta2, n)) + opt.Eps)
			ema[i] = opt.EMADecay*ema[i] + (1-opt.EMADecay)*w[i]
		}
		if !res.Applied || !res.WeightsFinite || math.Abs(float64(res.GradNorm)-norm) > 1e-5*norm {
			t.Errorf("step %d: applied %v, finite %v, grad norm %v, want true, true, %v", step, res.Applied, res.WeightsFinite, res.GradNorm, norm)
		}
		if _, ok := res.Outputs["pred"]; !ok {
			t.Errorf("step %d: the task's output pred is missing from %v", step, res.Outputs)
		}
	}
	for name, want := range map[string][]float64{"trained": w, "ema": ema, "adam_m": m, "adam_v": v} {
		group := map[string]*nn.Weights{"trained": tr.Trained, "ema": tr.EMA, "adam_m": tr.AdamM, "adam_v": tr.AdamV}[name]
		got, _, _ := group.Float32("w")
		for i := range want {
			if d := math.Abs(float64(got[i]) - want[i]); d > 1e-6*math.Max(1, math.Abs(want[i])) {
				t.Errorf("%s[%d] = %v, want %v", name, i, got[i], want[i])
			}
		}
	}
	if tr.Steps != 2 {
		t.Errorf("Steps = %d, want 2", tr.Steps)
	}
}

// TestAccumulationSumsMicroBatches: two micro-batches of one sample each
// update the weights as one batch of both (the loss is a mean).
func TestAccumulationSumsMicroBatches(t *testing.T) {
	opt := AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, MaxGradNorm: 1}
	big := regression(t, opt, false, []float32{1, -2})
	opt.AccumulationSteps = 2
	acc := regression(t, opt, false, []float32{1, -2})
	x := vec(2, 1)
	bigRes, err := big.Step(map[string]*tensors.Tensor{"x": x, "y": vec(1, 2)}, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	var res *Result
	for i, y := range []*tensors.Tensor{vec(0, 3), vec(2, 1)} {
		if res, err = acc.Step(map[string]*tensors.Tensor{"x": x, "y": y}, 0.1); err != nil {
			t.Fatal(err)
		}
		if res.Applied != (i == 1) || acc.Accumulating() != (i == 0) {
			t.Fatalf("micro-batch %d: applied %v, accumulating %v", i, res.Applied, acc.Accumulating())
		}
	}
	// The gradient is linear in y: the mean of the micro-batches' gradients
	// is the gradient at their mean y, the big batch's.
	if d := math.Abs(float64(bigRes.GradNorm - res.GradNorm)); d > 1e-6 {
		t.Errorf("grad norm: one batch %v, accumulated %v", bigRes.GradNorm, res.GradNorm)
	}
	p1, _, _ := big.Trained.Float32("w")
	p2, _, _ := acc.Trained.Float32("w")
	for i := range p1 {
		if math.Abs(float64(p1[i]-p2[i])) > 1e-6 {
			t.Errorf("w[%d]: one batch %v, accumulated %v", i, p1[i], p2[i])
		}
	}
}

// TestWeightsFiniteFlagsOverflow: a learning rate beyond float32's range
// makes the update infinite, and the step says so.
func TestWeightsFiniteFlagsOverflow(t *testing.T) {
	tr := regression(t, AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, true, []float32{1, -2})
	in := map[string]*tensors.Tensor{"x": vec(2, 1), "y": vec(1, 1)}
	res, err := tr.Step(in, 1e-3)
	if err != nil || !res.WeightsFinite {
		t.Fatalf("lr 1e-3: finite %v, err %v; want true", res != nil && res.WeightsFinite, err)
	}
	if res, err = tr.Step(in, 1e39); err != nil || res.WeightsFinite {
		got, _, _ := tr.Trained.Float32("w")
		t.Fatalf("lr 1e39: finite %v (weights %v), err %v; want false", res != nil && res.WeightsFinite, got, err)
	}
}

// TestProgramNamesMissingInputs: a Run without one of the named inputs
// says which.
func TestProgramNamesMissingInputs(t *testing.T) {
	tr := regression(t, AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, false, []float32{1})
	_, err := tr.Step(map[string]*tensors.Tensor{"x": vec(1)}, 1e-3)
	if err == nil || !strings.Contains(err.Error(), "missing: y") {
		t.Errorf("Step without y: %v, want an error naming y", err)
	}
}

// TestProgramKeepsPanickedErrors: an error a graph builder panics with
// comes back from Run with its chain intact (errors.Is finds it).
func TestProgramKeepsPanickedErrors(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	sentinel := errors.New("builder refuses")
	p, err := Compile(b, nil, []string{"x"}, nn.Options{}, func(map[string]*nn.Params, map[string]*Node) map[string]*Node {
		panic(fmt.Errorf("building: %w", sentinel))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(map[string]*tensors.Tensor{"x": vec(1)}); !errors.Is(err, sentinel) {
		t.Errorf("Run = %v, want an error wrapping the builder's", err)
	}
}

// TestScheduledEMADecay: with EMADecayAt the EMA follows diffusers'
// EMAModel.step, ema -= (1 - decay(n))·(ema - w) with the decay of each
// optimizer step n; the step's weights are the same as without it.
func TestScheduledEMADecay(t *testing.T) {
	opt := AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	plain := regression(t, opt, false, []float32{1, -2})
	decays := []float64{0, 0.5, 0.75} // EMAModel: decay 0 on the first step copies the weights
	var asked []int
	opt.EMADecayAt = func(n int) float64 { asked = append(asked, n); return decays[n-1] }
	tr := regression(t, opt, true, []float32{1, -2})
	ema := []float64{1, -2}
	for step := range decays {
		in := map[string]*tensors.Tensor{"x": vec(2, 1), "y": vec(float32(step), 1)}
		if _, err := plain.Step(in, 0.1); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Step(in, 0.1); err != nil {
			t.Fatal(err)
		}
		w, _, _ := tr.Trained.Float32("w")
		want, _, _ := plain.Trained.Float32("w")
		for i := range ema {
			if w[i] != want[i] {
				t.Fatalf("step %d: w[%d] = %v with the scheduled EMA, %v without", step+1, i, w[i], want[i])
			}
			ema[i] -= (1 - decays[step]) * (ema[i] - float64(w[i]))
		}
		got, _, _ := tr.EMA.Float32("w")
		for i := range ema {
			if math.Abs(float64(got[i])-ema[i]) > 1e-6 {
				t.Errorf("step %d: ema[%d] = %v, want %v", step+1, i, got[i], ema[i])
			}
		}
	}
	if fmt.Sprint(asked) != "[1 2 3]" {
		t.Errorf("EMADecayAt asked for steps %v, want [1 2 3]", asked)
	}
}
