package objectives

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/losses"
)

// Reconstruction names the pixel loss of the autoencoder objective: "l1" or "l2".
type Reconstruction string

// The reconstruction losses diffusers' train_autoencoderkl.py offers (F.l1_loss, F.mse_loss).
const (
	L1 Reconstruction = "l1"
	L2 Reconstruction = "l2"
)

// Autoencoder is the AutoencoderKL objective: a mean reconstruction loss on pixels plus
// KLWeight times the posterior's KL divergence from N(0, 1), as diffusers' train_autoencoderkl.py
// computes them without its LPIPS and adversarial terms (their weights cannot be had here).
type Autoencoder struct {
	Reconstruction Reconstruction
	// KLWeight scales the KL term (the script's --kl_scale, default 1e-6).
	KLWeight float64
}

// Validate checks the options.
func (a Autoencoder) Validate() error {
	if a.Reconstruction != L1 && a.Reconstruction != L2 {
		return fmt.Errorf("autoencoder objective: reconstruction %q, want l1 or l2", a.Reconstruction)
	}
	if a.KLWeight < 0 || math.IsNaN(a.KLWeight) {
		return fmt.Errorf("autoencoder objective: kl_weight is %g, want 0 or more", a.KLWeight)
	}
	return nil
}

// AutoencoderLoss is the objective's value and its two terms (each a scalar).
type AutoencoderLoss struct {
	Total, Reconstruction, KL *Node
}

// Loss builds the objective for pixels and their reconstruction [B, C, H, W] and the posterior's
// mean and (clamped) log-variance [B, c, h, w]: Total = Reconstruction + KLWeight·KL with KL the
// batch mean of KL.
func (a Autoencoder) Loss(pixels, recon, mean, logVar *Node) AutoencoderLoss {
	var rec *Node
	switch a.Reconstruction {
	case L1:
		rec = ReduceAllMean(Abs(Sub(recon, pixels)))
	case L2:
		rec = losses.MeanSquared(recon, pixels)
	default:
		panic(fmt.Errorf("autoencoder objective: reconstruction %q, want l1 or l2", a.Reconstruction))
	}
	kl := ReduceAllMean(KL(mean, logVar))
	return AutoencoderLoss{Total: Add(rec, MulScalar(kl, a.KLWeight)), Reconstruction: rec, KL: kl}
}

// KL is the per-sample divergence KL(N(mean, exp(logVar)) || N(0, 1)) [B] of a diagonal Gaussian
// over [B, c, h, w]: 0.5·Σ_{c,h,w}(mean² + var - 1 - logVar), as diffusers'
// DiagonalGaussianDistribution.kl() sums it (train_autoencoderkl.py then takes the batch mean).
func KL(mean, logVar *Node) *Node {
	terms := Sub(Add(Square(mean), Exp(logVar)), AddScalar(logVar, 1))
	return MulScalar(ReduceSum(terms, axesFrom(mean, 1)...), 0.5)
}

// LatentStats accumulates the mean and standard deviation of every latent value seen, for the
// pipeline's scaling_factor: diffusers' convention (the LDM paper's "rescale by the component-wise
// std" of the first batch) is 1/std of the unscaled latents. Batches merge exactly (Chan et al.),
// so the order of batches does not change the result beyond float64 rounding.
type LatentStats struct {
	n    int64
	mean float64
	m2   float64 // Σ (x - mean)²
}

// Add accumulates values.
func (s *LatentStats) Add(values []float32) {
	if len(values) == 0 {
		return
	}
	var mean float64
	for _, v := range values {
		mean += float64(v)
	}
	mean /= float64(len(values))
	var m2 float64
	for _, v := range values {
		d := float64(v) - mean
		m2 += d * d
	}
	n := int64(len(values))
	total := s.n + n
	delta := mean - s.mean
	s.m2 += m2 + delta*delta*float64(s.n)*float64(n)/float64(total)
	s.mean += delta * float64(n) / float64(total)
	s.n = total
}

// Count is the number of values accumulated.
func (s *LatentStats) Count() int64 { return s.n }

// Mean is the mean of the values.
func (s *LatentStats) Mean() float64 { return s.mean }

// Std is the unbiased standard deviation (torch.std's default, which the LDM code calls).
func (s *LatentStats) Std() float64 {
	if s.n < 2 {
		return math.NaN()
	}
	return math.Sqrt(s.m2 / float64(s.n-1))
}

// ScalingFactor is 1/Std, the value for the VAE config's scaling_factor.
func (s *LatentStats) ScalingFactor() (float64, error) {
	std := s.Std()
	if !(std > 0) {
		return 0, fmt.Errorf("latent stats: std of %d values is %g; cannot set scaling_factor", s.n, std)
	}
	return 1 / std, nil
}
