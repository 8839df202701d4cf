package objectives

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/lcm"
)

// Diffusion is the noise-prediction objective of diffusers' train_text_to_image.py: a timestep t
// drawn uniformly from [0, T), noisy = a(t)·x0 + s(t)·eps with a = sqrt(ac[t]), s = sqrt(1-ac[t]),
// the UNet's output regressed onto eps or v = a·eps - s·x0 with a (weighted) mean squared error.
// The zero value of every option but PredictionType turns that option off, as in the script.
type Diffusion struct {
	// PredictionType is the target: lcm.PredictEpsilon or lcm.PredictV (the script rejects "sample").
	PredictionType lcm.PredictionType
	// SNRGamma is γ of Min-SNR weighting (Hang et al. 2023, the script's --snr_gamma); 0 trains
	// with the plain MSE.
	SNRGamma float64
	// NoiseOffset adds NoiseOffset·N(0, 1) of shape [B, C, 1, 1] to the noise (--noise_offset,
	// "offset noise"); the target sees the offset noise too.
	NoiseOffset float64
	// InputPerturbation noises the input with noise + p·N(0, 1) while the target keeps the
	// unperturbed noise (--input_perturbation, Ning et al. 2023).
	InputPerturbation float64
}

// Validate checks the options.
func (d Diffusion) Validate() error {
	switch d.PredictionType {
	case lcm.PredictEpsilon, lcm.PredictV:
	default:
		return fmt.Errorf("diffusion objective: prediction_type %q, want epsilon or v_prediction", d.PredictionType)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"snr_gamma", d.SNRGamma}, {"noise_offset", d.NoiseOffset}, {"input_perturbation", d.InputPerturbation}} {
		if f.v < 0 {
			return fmt.Errorf("diffusion objective: %s is %g, want 0 (off) or more", f.name, f.v)
		}
	}
	return nil
}

// DiffusionCoefficients are the per-sample scalars of one diffusion training step, computed on the
// host from the noise schedule. Every slice has one entry per sample.
type DiffusionCoefficients struct {
	Timesteps    []int64
	Alpha, Sigma []float32 // a(t) = sqrt(ac[t]) and s(t) = sqrt(1 - ac[t])
	Weight       []float32 // the Min-SNR loss weight; 1 when SNRGamma is 0
}

// Coefficients looks up the scales of timesteps in schedule and computes the loss weights.
func (d Diffusion) Coefficients(schedule *lcm.NoiseSchedule, timesteps []int64) (*DiffusionCoefficients, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	B := len(timesteps)
	c := &DiffusionCoefficients{Timesteps: timesteps, Alpha: make([]float32, B), Sigma: make([]float32, B),
		Weight: make([]float32, B)}
	for i, t := range timesteps {
		if t < 0 || int(t) >= schedule.NumTrainTimesteps {
			return nil, fmt.Errorf("diffusion objective: timestep %d out of range [0, %d)", t, schedule.NumTrainTimesteps)
		}
		c.Alpha[i], c.Sigma[i] = schedule.Alpha(t), schedule.Sigma(t)
		c.Weight[i] = 1
		if d.SNRGamma > 0 {
			c.Weight[i] = MinSNRWeight(SNR(schedule, t), float32(d.SNRGamma), d.PredictionType)
		}
	}
	return c, nil
}

// SNR is the signal-to-noise ratio (a(t)/s(t))² of timestep t, in float32 as diffusers'
// training_utils.compute_snr computes it.
func SNR(schedule *lcm.NoiseSchedule, t int64) float32 {
	r := schedule.Alpha(t) / schedule.Sigma(t)
	return r * r
}

// MinSNRWeight is the script's mse_loss_weights: min(snr, γ)/snr for epsilon targets and
// min(snr, γ)/(snr + 1) for v targets (the v loss already carries a factor snr + 1 relative to the
// x0 loss, the epsilon loss a factor snr). This is the current script; older versions of it
// added 1 to snr before the min as well: min(snr + 1, γ)/(snr + 1).
func MinSNRWeight(snr, gamma float32, pt lcm.PredictionType) float32 {
	w := min(snr, gamma)
	if pt == lcm.PredictV {
		return w / (snr + 1)
	}
	return w / snr
}

// NoisyAndTarget builds the UNet input and the regression target from clean latents x0
// [B, C, H, W], standard normal noise shaped like x0, and the per-sample scales alpha, sigma [B].
// offsetNoise ([B, C, 1, 1]) is read only when NoiseOffset > 0 and perturbation (shaped like x0)
// only when InputPerturbation > 0; pass nil otherwise.
func (d Diffusion) NoisyAndTarget(x0, noise, offsetNoise, perturbation, alpha, sigma *Node) (noisy, target *Node) {
	if d.NoiseOffset > 0 {
		noise = Add(noise, MulScalar(offsetNoise, d.NoiseOffset))
	}
	input := noise
	if d.InputPerturbation > 0 {
		input = Add(noise, MulScalar(perturbation, d.InputPerturbation))
	}
	noisy = lcm.GraphWeightedSum(alpha, x0, sigma, input)
	switch d.PredictionType {
	case lcm.PredictEpsilon:
		target = noise
	case lcm.PredictV:
		// DDPMScheduler.get_velocity: a·noise - s·x0.
		target = lcm.GraphWeightedSum(alpha, noise, sigma, Neg(x0))
	default:
		panic(fmt.Errorf("diffusion objective: prediction_type %q, want epsilon or v_prediction", d.PredictionType))
	}
	return noisy, target
}

// WeightedMSE is mean_b(weight_b · mean_{c,h,w}((pred - target)²)) for pred, target [B, ...] and
// weight [B]: the script's Min-SNR loss (per-sample mean, times the weight, then the batch mean).
// With every weight 1 it is F.mse_loss(pred, target, reduction="mean"), the loss without
// snr_gamma, since every sample has the same number of elements.
func WeightedMSE(pred, target, weight *Node) *Node {
	perSample := ReduceMean(Square(Sub(pred, target)), axesFrom(pred, 1)...)
	return ReduceAllMean(Mul(perSample, weight))
}

// axesFrom lists the axes of x from first on.
func axesFrom(x *Node, first int) []int {
	axes := make([]int, 0, x.Rank()-first)
	for a := first; a < x.Rank(); a++ {
		axes = append(axes, a)
	}
	return axes
}

// DropCaptions returns captions with each one replaced by the empty prompt when its uniform draw
// u[i] in [0, 1) is below proportion, as the script's --proportion_empty_prompts does, so that the
// model also learns the unconditional prediction classifier-free guidance needs.
func DropCaptions(captions []string, proportion float64, u []float64) ([]string, error) {
	if proportion < 0 || proportion > 1 {
		return nil, fmt.Errorf("diffusion objective: proportion_empty_prompts is %g, want 0 to 1", proportion)
	}
	if len(u) != len(captions) {
		return nil, fmt.Errorf("diffusion objective: %d captions and %d dropout draws", len(captions), len(u))
	}
	out := make([]string, len(captions))
	for i, c := range captions {
		if u[i] >= proportion {
			out[i] = c
		}
	}
	return out, nil
}
