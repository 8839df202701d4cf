package lcm

import (
	"math"
	"strings"
	"testing"
)

// REFERENCE-LCD §2.5's worked example: T=1000, N=50.
func TestDDIMSolverGridForFiftySteps(t *testing.T) {
	s := sdSchedule(t)
	solver, err := NewDDIMSolver(s, 50)
	if err != nil {
		t.Fatal(err)
	}
	if solver.SkippingStep() != 20 || len(solver.Timesteps) != 50 {
		t.Fatalf("k = %d, %d grid points", solver.SkippingStep(), len(solver.Timesteps))
	}
	for n, ts := range solver.Timesteps {
		if ts != int64(20*n+19) {
			t.Fatalf("t_%d = %d, want %d", n, ts, 20*n+19)
		}
		if solver.AlphaCumprod[n] != s.AlphasCumprod[ts] {
			t.Errorf("AlphaCumprod[%d] = %g, want ac[%d]", n, solver.AlphaCumprod[n], ts)
		}
	}
	for _, c := range []struct {
		index      int
		start, end int64
		acPrev     float64
	}{
		{0, 19, 0, 0.99915}, // 19-20 clamps to 0; ac_prev = ac[0]
		{24, 499, 479, 0.305096},
		{49, 999, 979, 0.005913},
	} {
		start, end := solver.StartAndEnd(c.index)
		if start != c.start || end != c.end {
			t.Errorf("StartAndEnd(%d) = %d, %d, want %d, %d", c.index, start, end, c.start, c.end)
		}
		// x_prev sits at t_end: ac_prev is ac[end].
		if got := solver.AlphaCumprodPrev[c.index]; got != s.AlphasCumprod[end] || math.Abs(float64(got)-c.acPrev) > 1e-6 {
			t.Errorf("AlphaCumprodPrev[%d] = %g, want ac[%d] = %g", c.index, got, end, c.acPrev)
		}
	}
}

func TestDDIMStepIsExactOnTheForwardProcess(t *testing.T) {
	// With x0 and eps the true ones, the DDIM step lands on the forward
	// process at the end timestep: sqrt(ac_prev)·x0 + sqrt(1-ac_prev)·eps.
	s := sdSchedule(t)
	solver, err := NewDDIMSolver(s, 50)
	if err != nil {
		t.Fatal(err)
	}
	x0, eps := []float32{0.5, -1.25, 2}, []float32{1, 0.3, -0.7}
	for _, n := range []int{0, 24, 49} {
		_, end := solver.StartAndEnd(n)
		got, want := solver.Step(x0, eps, n), s.AddNoise(x0, eps, end)
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Errorf("index %d: step %v, forward process %v", n, got, want)
				break
			}
		}
	}
}

func TestDDIMSolverRefusesANonDivisor(t *testing.T) {
	_, err := NewDDIMSolver(sdSchedule(t), 30)
	if err == nil || !strings.Contains(err.Error(), "num_ddim_timesteps 30 does not divide num_train_timesteps 1000") {
		t.Fatalf("err = %v", err)
	}
	for _, n := range []int{0, -1, 1001} {
		if _, err := NewDDIMSolver(sdSchedule(t), n); err == nil {
			t.Errorf("num_ddim_timesteps %d accepted", n)
		}
	}
	if _, err := NewDDIMSolver(sdSchedule(t), 1000); err != nil {
		t.Errorf("N = T: %v", err)
	}
}
