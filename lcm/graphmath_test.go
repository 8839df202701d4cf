package lcm

import (
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/models/nn"
)

// TestGraphConversionsMatchHost: the graph twins of PredictedX0 and
// PredictedEps, used by the distillation step, agree with the host
// functions for every prediction type (epsilon, sample, v_prediction).
func TestGraphConversionsMatchHost(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	schedule, err := NewNoiseSchedule(DefaultSchedulerConfig())
	if err != nil {
		t.Fatal(err)
	}
	out := []float32{0.3, -1.2, 0.8, 2.1, -0.4, 0.05}
	z := []float32{1.5, 0.2, -0.7, 0.9, 0.1, -2.0}
	ts := []int64{19, 999} // two samples of three values
	alpha := []float32{schedule.Alpha(ts[0]), schedule.Alpha(ts[1])}
	sigma := []float32{schedule.Sigma(ts[0]), schedule.Sigma(ts[1])}
	for _, pt := range []PredictionType{PredictEpsilon, PredictSample, PredictV} {
		outs, err := ExecOnceN(b, func(o, z, a, s *Node) []*Node {
			x0, eps := GraphX0AndEps(o, z, a, s, pt)
			return []*Node{x0, eps}
		}, tensors.FromFlatDataAndDimensions(out, 2, 3), tensors.FromFlatDataAndDimensions(z, 2, 3),
			tensors.FromFlatDataAndDimensions(alpha, 2), tensors.FromFlatDataAndDimensions(sigma, 2))
		if err != nil {
			t.Fatal(err)
		}
		gotX0, _, _ := nn.TensorFloat32(outs[0])
		gotEps, _, _ := nn.TensorFloat32(outs[1])
		for i := range 2 {
			wantX0, err := PredictedX0(out[3*i:3*i+3], z[3*i:3*i+3], alpha[i], sigma[i], pt)
			if err != nil {
				t.Fatal(err)
			}
			wantEps, err := PredictedEps(out[3*i:3*i+3], z[3*i:3*i+3], alpha[i], sigma[i], pt)
			if err != nil {
				t.Fatal(err)
			}
			if d := golden.MaxAbsDiff(gotX0[3*i:3*i+3], wantX0); d > 1e-5 {
				t.Errorf("%s x0, sample %d: graph and host differ by %g", pt, i, d)
			}
			if d := golden.MaxAbsDiff(gotEps[3*i:3*i+3], wantEps); d > 1e-5 {
				t.Errorf("%s eps, sample %d: graph and host differ by %g", pt, i, d)
			}
		}
	}
}
