package lcm

import (
	"fmt"
	"math"
)

// DDIMSolver is the deterministic DDIM (eta = 0) ODE solver on the skipped
// timestep grid of latent consistency distillation (the scripts'
// DDIMSolver; REFERENCE-LCD §2.5). With T training timesteps and N grid
// points the skipping step is k = T/N and the grid is t_n = (n+1)·k - 1,
// n = 0..N-1 (19, 39, ..., 999 for T=1000, N=50). A training sample at grid
// index n starts at t_n and the teacher's DDIM step lands on
// max(t_n - k, 0), whose alphas_cumprod is AlphaCumprodPrev[n].
type DDIMSolver struct {
	Timesteps        []int64   // t_n = (n+1)·k - 1, ascending (the scripts' ddim_timesteps)
	AlphaCumprod     []float32 // ac[t_n]
	AlphaCumprodPrev []float32 // ac[0] for n = 0, else ac[t_{n-1}]
	skip             int       // k
}

// NewDDIMSolver builds the grid for numDDIMTimesteps = N points. diffusers
// uses k = T // N silently; a non-divisor gives a grid that does not end at
// T-1 and an LCMScheduler (whose grid is the same formula) that cannot reach
// the first timestep it was trained for, so it is refused here.
func NewDDIMSolver(schedule *NoiseSchedule, numDDIMTimesteps int) (*DDIMSolver, error) {
	T, N := schedule.NumTrainTimesteps, numDDIMTimesteps
	if N < 1 || N > T {
		return nil, fmt.Errorf("ddim solver: num_ddim_timesteps is %d, want 1..num_train_timesteps (%d)", N, T)
	}
	if T%N != 0 {
		return nil, fmt.Errorf("ddim solver: num_ddim_timesteps %d does not divide num_train_timesteps %d: "+
			"the skipping step k = %d//%d = %d would put the last grid point at %d instead of %d; pick a divisor of %d",
			N, T, T, N, T/N, N*(T/N)-1, T-1, T)
	}
	k := T / N
	s := &DDIMSolver{
		Timesteps:        make([]int64, N),
		AlphaCumprod:     make([]float32, N),
		AlphaCumprodPrev: make([]float32, N),
		skip:             k,
	}
	for n := range N {
		t := int64((n+1)*k - 1)
		s.Timesteps[n] = t
		s.AlphaCumprod[n] = schedule.AlphasCumprod[t]
		if n == 0 {
			s.AlphaCumprodPrev[n] = schedule.AlphasCumprod[0]
		} else {
			s.AlphaCumprodPrev[n] = schedule.AlphasCumprod[s.Timesteps[n-1]]
		}
	}
	return s, nil
}

// SkippingStep is k = T/N, the scripts' `topk`.
func (s *DDIMSolver) SkippingStep() int { return s.skip }

// StartAndEnd gives the start timestep t_n of grid index n (0 <= n < N) and
// the end timestep max(t_n - k, 0) the DDIM step lands on: the scripts'
// start_timesteps and timesteps. Index 0 clamps 19-20 to 0.
func (s *DDIMSolver) StartAndEnd(index int) (start, end int64) {
	start = s.Timesteps[index]
	return start, max(start-int64(s.skip), 0)
}

// Step is the solver's ddim_step for one sample at grid index n:
// x_prev = sqrt(acp)·x0 + sqrt(1-acp)·eps with acp = AlphaCumprodPrev[n].
//
// The scripts build ddim_alpha_cumprods_prev from a Python list, so it is a
// float64 tensor and this step (and the target computed from it) runs in
// float64 upstream; it is computed in float64 here too and rounded to
// float32 at the end.
func (s *DDIMSolver) Step(x0, eps []float32, index int) []float32 {
	if len(x0) != len(eps) {
		panic(fmt.Sprintf("lcm: DDIMSolver.Step with %d x0 and %d eps elements", len(x0), len(eps)))
	}
	acp := float64(s.AlphaCumprodPrev[index])
	a, b := math.Sqrt(acp), math.Sqrt(1-acp)
	out := make([]float32, len(x0))
	for i := range x0 {
		dir := float64(b * float64(eps[i]))
		out[i] = float32(float64(a*float64(x0[i])) + dir)
	}
	return out
}
