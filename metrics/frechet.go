package metrics

import (
	"fmt"
	"math"
)

// Gaussian is the mean and covariance [dim·dim, row-major] of a feature set.
type Gaussian struct {
	Mean []float64
	Cov  []float64
}

// FitGaussian is the mean and the unbiased (N-1) covariance of n feature
// vectors of dim values each, features [n, dim] row-major: numpy.cov's
// estimate, which pytorch-fid uses.
func FitGaussian(features []float32, dim int) (Gaussian, error) {
	if dim <= 0 || len(features)%dim != 0 || len(features)/dim < 2 {
		return Gaussian{}, fmt.Errorf("frechet: %d values are not at least 2 feature vectors of %d", len(features), dim)
	}
	n := len(features) / dim
	g := Gaussian{Mean: make([]float64, dim), Cov: make([]float64, dim*dim)}
	for i := range n {
		for j, v := range features[i*dim : (i+1)*dim] {
			g.Mean[j] += float64(v)
		}
	}
	for j := range g.Mean {
		g.Mean[j] /= float64(n)
	}
	centered := make([]float64, dim)
	for i := range n {
		for j, v := range features[i*dim : (i+1)*dim] {
			centered[j] = float64(v) - g.Mean[j]
		}
		for r := range dim {
			row := g.Cov[r*dim : (r+1)*dim]
			for c := r; c < dim; c++ {
				row[c] += centered[r] * centered[c]
			}
		}
	}
	for r := range dim {
		for c := r; c < dim; c++ {
			g.Cov[r*dim+c] /= float64(n - 1)
			g.Cov[c*dim+r] = g.Cov[r*dim+c]
		}
	}
	return g, nil
}

// FrechetDistance is the Fréchet distance between two feature sets [n, dim]
// row-major (the FID formula when the features are an Inception pool
// layer's): see Gaussian.Frechet.
func FrechetDistance(a, b []float32, dim int) (float64, error) {
	ga, err := FitGaussian(a, dim)
	if err != nil {
		return 0, err
	}
	gb, err := FitGaussian(b, dim)
	if err != nil {
		return 0, err
	}
	return ga.Frechet(gb)
}

// Frechet is the Fréchet (2-Wasserstein) distance between two Gaussians,
// |μ1-μ2|² + tr Σ1 + tr Σ2 - 2 tr (Σ1^½ Σ2 Σ1^½)^½. The square roots are
// real: Σ1^½ from the eigendecomposition of Σ1, then the trace of the root
// of the symmetric positive semi-definite Σ1^½ Σ2 Σ1^½ as the sum of its
// eigenvalues' roots (tiny negative eigenvalues of rounding are zero).
// scipy's sqrtm of the non-symmetric Σ1·Σ2, which pytorch-fid uses, has
// the same trace.
func (g Gaussian) Frechet(o Gaussian) (float64, error) {
	dim := len(g.Mean)
	if len(o.Mean) != dim || len(g.Cov) != dim*dim || len(o.Cov) != dim*dim {
		return 0, fmt.Errorf("frechet: Gaussians of %d and %d dimensions (covariances of %d and %d values)",
			dim, len(o.Mean), len(g.Cov), len(o.Cov))
	}
	var d2, tr float64
	for i := range dim {
		d := g.Mean[i] - o.Mean[i]
		d2 += d * d
		tr += g.Cov[i*dim+i] + o.Cov[i*dim+i]
	}
	root1, err := SymmetricSqrt(g.Cov, dim)
	if err != nil {
		return 0, err
	}
	product := matMul(matMul(root1, o.Cov, dim), root1, dim)
	symmetrize(product, dim)
	values, _, err := SymmetricEigen(product, dim)
	if err != nil {
		return 0, err
	}
	var trRoot float64
	for _, v := range values {
		trRoot += math.Sqrt(max(v, 0))
	}
	return d2 + tr - 2*trRoot, nil
}

// SymmetricSqrt is the positive semi-definite square root V·diag(√λ)·Vᵀ of
// a symmetric positive semi-definite matrix a [n·n] (negative eigenvalues
// of rounding become zero).
func SymmetricSqrt(a []float64, n int) ([]float64, error) {
	values, vectors, err := SymmetricEigen(a, n)
	if err != nil {
		return nil, err
	}
	out := make([]float64, n*n)
	for k, v := range values {
		s := math.Sqrt(max(v, 0))
		for r := range n {
			vr := vectors[r*n+k] * s
			for c := range n {
				out[r*n+c] += vr * vectors[c*n+k]
			}
		}
	}
	return out, nil
}

func matMul(a, b []float64, n int) []float64 {
	out := make([]float64, n*n)
	for r := range n {
		for k := range n {
			x := a[r*n+k]
			if x == 0 {
				continue
			}
			for c := range n {
				out[r*n+c] += x * b[k*n+c]
			}
		}
	}
	return out
}

// symmetrize replaces a by (a+aᵀ)/2, removing the rounding asymmetry of a
// product that is symmetric in exact arithmetic.
func symmetrize(a []float64, n int) {
	for r := range n {
		for c := r + 1; c < n; c++ {
			m := (a[r*n+c] + a[c*n+r]) / 2
			a[r*n+c], a[c*n+r] = m, m
		}
	}
}
