package lcm

import "fmt"

// PredictedX0 converts a model output o on input z at a timestep with signal
// scale alpha = a(t) and noise scale sigma = s(t) into the predicted clean
// sample x0 (the scripts' get_predicted_original_sample, LCMScheduler.step
// step 4; REFERENCE-LCD §2.3):
//
//	epsilon:       (z - sigma·o) / alpha
//	sample:        o
//	v_prediction:  alpha·z - sigma·o
//
// Elementwise in float32, in diffusers' order of operations. The graph twin
// in the distillation step uses the same coefficients.
func PredictedX0(out, z []float32, alpha, sigma float32, predType PredictionType) ([]float32, error) {
	if len(out) != len(z) {
		return nil, fmt.Errorf("predicted x0: model output has %d elements, sample has %d", len(out), len(z))
	}
	x0 := make([]float32, len(out))
	switch predType {
	case PredictEpsilon:
		for i := range x0 {
			x0[i] = (z[i] - float32(sigma*out[i])) / alpha
		}
	case PredictSample:
		copy(x0, out)
	case PredictV:
		for i := range x0 {
			x0[i] = float32(alpha*z[i]) - float32(sigma*out[i])
		}
	default:
		return nil, fmt.Errorf("predicted x0: prediction type %q is not supported (want epsilon, sample or v_prediction)", predType)
	}
	return x0, nil
}

// PredictedEps converts a model output o on input z into the predicted noise
// (the scripts' get_predicted_noise, after DDIMScheduler.step):
//
//	epsilon:       o
//	sample:        (z - alpha·o) / sigma
//	v_prediction:  alpha·o + sigma·z
func PredictedEps(out, z []float32, alpha, sigma float32, predType PredictionType) ([]float32, error) {
	if len(out) != len(z) {
		return nil, fmt.Errorf("predicted noise: model output has %d elements, sample has %d", len(out), len(z))
	}
	eps := make([]float32, len(out))
	switch predType {
	case PredictEpsilon:
		copy(eps, out)
	case PredictSample:
		for i := range eps {
			eps[i] = (z[i] - float32(alpha*out[i])) / sigma
		}
	case PredictV:
		for i := range eps {
			eps[i] = float32(alpha*out[i]) + float32(sigma*z[i])
		}
	default:
		return nil, fmt.Errorf("predicted noise: prediction type %q is not supported (want epsilon, sample or v_prediction)", predType)
	}
	return eps, nil
}
