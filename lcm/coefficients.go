package lcm

import (
	"fmt"
	"math"
)

// Draws are the random choices of one distillation step, drawn by the run's
// seeded generator (or fixed by a test): the DDIM grid index and the
// uniform draw that becomes the guidance scale, per sample. The noise is a
// tensor and travels with the batch.
type Draws struct {
	Index []int64
	U     []float32
}

// StepCoefficients are the per-sample scalars of one distillation step,
// computed on the host from the schedule so that training and sampling share
// one implementation of the numerics. Every slice has one entry per sample.
type StepCoefficients struct {
	Start, End                   []int64   // t_n and max(t_n - k, 0)
	AlphaStart, SigmaStart       []float32 // a, s at Start (noising and the student's x0)
	AlphaEnd, SigmaEnd           []float32 // a, s at End (the target's x0)
	CSkipStart, COutStart        []float32 // boundary scalings at Start
	CSkipEnd, COutEnd            []float32 // boundary scalings at End
	SqrtAlphaPrev, SqrtSigmaPrev []float32 // DDIM step: sqrt(ac_prev), sqrt(1 - ac_prev)
	W                            []float32 // guidance scale
	WEmbedding                   []float32 // [B, dim] guidance embedding of W; nil when dim is 0
}

// Coefficients turns the draws into the step's per-sample scalars.
// embeddingDim is the student's time_cond_proj_dim (0 for LoRA students,
// which are never told w).
func Coefficients(schedule *NoiseSchedule, solver *DDIMSolver, d Draws, wMin, wMax, timestepScaling float64, embeddingDim int) (*StepCoefficients, error) {
	if len(d.Index) != len(d.U) {
		return nil, fmt.Errorf("lcm: %d indices and %d guidance draws", len(d.Index), len(d.U))
	}
	B := len(d.Index)
	c := &StepCoefficients{
		Start: make([]int64, B), End: make([]int64, B),
		AlphaStart: make([]float32, B), SigmaStart: make([]float32, B),
		AlphaEnd: make([]float32, B), SigmaEnd: make([]float32, B),
		CSkipStart: make([]float32, B), COutStart: make([]float32, B),
		CSkipEnd: make([]float32, B), COutEnd: make([]float32, B),
		SqrtAlphaPrev: make([]float32, B), SqrtSigmaPrev: make([]float32, B),
		W: make([]float32, B),
	}
	for i, n := range d.Index {
		if n < 0 || int(n) >= len(solver.Timesteps) {
			return nil, fmt.Errorf("lcm: DDIM index %d out of range [0, %d)", n, len(solver.Timesteps))
		}
		start, end := solver.StartAndEnd(int(n))
		c.Start[i], c.End[i] = start, end
		c.AlphaStart[i], c.SigmaStart[i] = schedule.Alpha(start), schedule.Sigma(start)
		c.AlphaEnd[i], c.SigmaEnd[i] = schedule.Alpha(end), schedule.Sigma(end)
		c.CSkipStart[i], c.COutStart[i] = BoundaryScalings(start, float32(timestepScaling))
		c.CSkipEnd[i], c.COutEnd[i] = BoundaryScalings(end, float32(timestepScaling))
		// The scripts keep ddim_alpha_cumprods_prev in float64 and take the
		// square root there; the values are float32 alphas_cumprod entries.
		prev := float64(solver.AlphaCumprodPrev[n])
		c.SqrtAlphaPrev[i] = float32(math.Sqrt(prev))
		c.SqrtSigmaPrev[i] = float32(math.Sqrt(1 - prev))
		c.W[i] = GuidanceScale(d.U[i], wMin, wMax)
	}
	if embeddingDim > 0 {
		c.WEmbedding = GuidanceEmbedding(c.W, embeddingDim)
	}
	return c, nil
}
