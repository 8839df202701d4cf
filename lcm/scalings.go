package lcm

// SigmaData is the data standard deviation in the consistency-model
// boundary scalings; diffusers hard-codes 0.5.
const SigmaData = 0.5

// DefaultTimestepScaling is diffusers' default timestep_scaling (scheduler)
// and --timestep_scaling_factor (scripts).
const DefaultTimestepScaling = 10

// BoundaryScalings gives c_skip and c_out at integer timestep t, so that the
// consistency function f(z, t) = c_skip·z + c_out·x0 is exactly z at t = 0
// (REFERENCE-LCD §2.4):
//
//	u = s·t,  c_skip = sd² / (u² + sd²),  c_out = u / sqrt(u² + sd²)
//
// with sd = SigmaData and s = timestepScaling. In diffusers t is an int64
// tensor multiplied by a Python float, so everything is float32:
// u = float32(t)·s, u² is rounded (9990² becomes 99800096), and so on.
func BoundaryScalings(t int64, timestepScaling float32) (cSkip, cOut float32) {
	const sd2 = float32(SigmaData * SigmaData)
	u := float32(t) * timestepScaling
	d := float32(u*u) + sd2
	return sd2 / d, u / sqrt32(d)
}

// ConsistencyOutput applies the boundary condition to a predicted x0:
// f = c_skip·z + c_out·x0, elementwise in float32 (the scripts' model_pred
// and target, LCMScheduler's denoised).
func ConsistencyOutput(z, x0 []float32, cSkip, cOut float32) []float32 {
	return weightedSum(cSkip, z, cOut, x0)
}
