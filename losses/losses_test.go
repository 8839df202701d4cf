package losses

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/backend"
)

// TestLossesMatchClosedForm checks both losses and their gradients against
// values computed by hand in float64.
func TestLossesMatchClosedForm(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	pred := []float32{0.5, -1, 2, 0.001}
	target := []float32{0, -1.5, -1, 0.0015}
	const c = 0.001
	var wantL2, wantHuber float64
	wantGradL2 := make([]float64, len(pred))
	wantGradHuber := make([]float64, len(pred))
	for i := range pred {
		d := float64(pred[i]) - float64(target[i])
		wantL2 += d * d / 4
		wantHuber += (math.Sqrt(d*d+c*c) - c) / 4
		wantGradL2[i] = 2 * d / 4
		wantGradHuber[i] = d / math.Sqrt(d*d+c*c) / 4
	}
	for _, kind := range []Kind{L2, Huber} {
		outs, err := ExecOnceN(b, func(p, q *Node) []*Node {
			l := Loss(kind, p, q, c)
			return []*Node{l, Gradient(l, p)[0]}
		}, pred, target)
		if err != nil {
			t.Fatal(err)
		}
		got := float64(outs[0].Value().(float32))
		grad := outs[1].Value().([]float32)
		want, wantGrad := wantL2, wantGradL2
		if kind == Huber {
			want, wantGrad = wantHuber, wantGradHuber
		}
		if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("%s loss = %.9g, want %.9g", kind, got, want)
		}
		for i := range grad {
			if math.Abs(float64(grad[i])-wantGrad[i]) > 1e-5 {
				t.Errorf("%s grad[%d] = %.7g, want %.7g", kind, i, grad[i], wantGrad[i])
			}
		}
	}
	if _, err := Parse("l1"); err == nil {
		t.Error("Parse(l1) should fail")
	}
}
