package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol*math.Max(1, math.Abs(want)) }

// rotation2 is the 2×2 rotation by angle a.
func rotation2(a float64) []float64 {
	c, s := math.Cos(a), math.Sin(a)
	return []float64{c, -s, s, c}
}

// rotated is R·diag(d)·Rᵀ for a 2×2 rotation R.
func rotated(r []float64, d0, d1 float64) []float64 {
	out := matMul(matMul(r, []float64{d0, 0, 0, d1}, 2), []float64{r[0], r[2], r[1], r[3]}, 2)
	symmetrize(out, 2)
	return out
}

// TestFrechetMatchesClosedForms: the distance between two Gaussians equals
// the hand-computed closed forms. Diagonal and commuting covariances:
// |Δμ|² + Σ(√a_i - √b_i)². Two 2×2 covariances that do not commute: for a
// 2×2 positive semi-definite M, tr √M = √(tr M + 2√det M), so
// tr (Σ1^½Σ2Σ1^½)^½ = √(tr(Σ1Σ2) + 2√(det Σ1 det Σ2)).
func TestFrechetMatchesClosedForms(t *testing.T) {
	// Σ1 = diag(4, 1), Σ2 = R(30°)·diag(9, 1/4)·R(30°)ᵀ: with c² = 3/4 and
	// s² = 1/4, Σ2 = [[27/4+1/16, ·], [·, 9/4+3/16]], tr(Σ1Σ2) = 4·(109/16) + 39/16
	// = 29.6875, det Σ1 det Σ2 = 4·9/4 = 9, tr Σ1 + tr Σ2 = 5 + 9.25.
	rotatedWant := 1*1 + 2*2 + 5 + 9.25 - 2*math.Sqrt(29.6875+2*3)
	r := rotation2(0.7)
	for _, c := range []struct {
		name string
		a, b Gaussian
		want float64
	}{
		{"diagonal",
			Gaussian{Mean: []float64{0, 1, 2}, Cov: []float64{4, 0, 0, 0, 9, 0, 0, 0, 1}},
			Gaussian{Mean: []float64{1, 1, 0}, Cov: []float64{1, 0, 0, 0, 16, 0, 0, 0, 0.25}},
			1 + 0 + 4 + 1 + 1 + 0.25},
		{"identical", Gaussian{Mean: []float64{3, -1}, Cov: rotated(r, 5, 0.5)},
			Gaussian{Mean: []float64{3, -1}, Cov: rotated(r, 5, 0.5)}, 0},
		{"commuting", Gaussian{Mean: []float64{0, 0}, Cov: rotated(r, 4, 9)},
			Gaussian{Mean: []float64{0, 3}, Cov: rotated(r, 1, 25)}, 9 + 1 + 4},
		{"rotated", Gaussian{Mean: []float64{0, 0}, Cov: []float64{4, 0, 0, 1}},
			Gaussian{Mean: []float64{1, 2}, Cov: rotated(rotation2(math.Pi/6), 9, 0.25)}, rotatedWant},
		{"singular", Gaussian{Mean: []float64{0, 0}, Cov: []float64{1, 0, 0, 0}},
			Gaussian{Mean: []float64{0, 0}, Cov: []float64{0, 0, 0, 4}}, 1 + 4},
	} {
		got, err := c.a.Frechet(c.b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !near(got, c.want, 1e-9) {
			t.Errorf("%s: Fréchet distance %.12g, want %.12g", c.name, got, c.want)
		}
		back, _ := c.b.Frechet(c.a)
		if !near(back, got, 1e-9) {
			t.Errorf("%s: not symmetric: %v one way, %v the other", c.name, got, back)
		}
	}
}

// TestFitGaussianIsNumpyCov: the corners of a 2×2 square have mean (1, 1)
// and unbiased covariance diag(4/3, 4/3); points on a line are perfectly
// correlated.
func TestFitGaussianIsNumpyCov(t *testing.T) {
	g, err := FitGaussian([]float32{0, 0, 2, 0, 0, 2, 2, 2}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{1, 1} {
		if g.Mean[i] != want {
			t.Errorf("mean[%d] = %v, want %v", i, g.Mean[i], want)
		}
	}
	for i, want := range []float64{4.0 / 3, 0, 0, 4.0 / 3} {
		if !near(g.Cov[i], want, 1e-15) {
			t.Errorf("cov[%d] = %v, want %v", i, g.Cov[i], want)
		}
	}
	// x = 0, 1, 2 and y = 2x: var x = 1, cov = 2, var y = 4.
	g, _ = FitGaussian([]float32{0, 0, 1, 2, 2, 4}, 2)
	for i, want := range []float64{1, 2, 2, 4} {
		if !near(g.Cov[i], want, 1e-15) {
			t.Errorf("line: cov[%d] = %v, want %v", i, g.Cov[i], want)
		}
	}
	if _, err := FitGaussian([]float32{1, 2}, 2); err == nil {
		t.Error("one feature vector: no error")
	}
}

// TestFrechetOfSamplesApproachesClosedForm: 20000 draws from each of two
// known 3-dimensional Gaussians give a distance within sampling error of
// the closed form |Δμ|² + Σ(σa - σb)² (independent axes).
func TestFrechetOfSamplesApproachesClosedForm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(mean, std []float64, n int) []float32 {
		out := make([]float32, 0, n*len(mean))
		for range n {
			for j := range mean {
				out = append(out, float32(mean[j]+std[j]*rng.NormFloat64()))
			}
		}
		return out
	}
	a := draw([]float64{0, 1, -1}, []float64{1, 2, 0.5}, 20000)
	b := draw([]float64{1, 1, 0}, []float64{2, 2, 1}, 20000)
	got, err := FrechetDistance(a, b, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := 1 + 0 + 1 + 1 + 0 + 0.25
	if math.Abs(got-want) > 0.1 {
		t.Errorf("Fréchet distance of samples %v, closed form %v", got, want)
	}
	self, _ := FrechetDistance(a, a, 3)
	if math.Abs(self) > 1e-9 {
		t.Errorf("a set against itself: %v, want 0", self)
	}
}

// TestSymmetricEigenReconstructs: a random symmetric 12×12 matrix is
// V·diag(λ)·Vᵀ with orthonormal V, and its square root squares back to a
// positive semi-definite input.
func TestSymmetricEigenReconstructs(t *testing.T) {
	const n = 12
	rng := rand.New(rand.NewPCG(3, 4))
	a := make([]float64, n*n)
	for r := range n {
		for c := r; c < n; c++ {
			a[r*n+c] = rng.NormFloat64()
			a[c*n+r] = a[r*n+c]
		}
	}
	values, v, err := SymmetricEigen(a, n)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k < n; k++ {
		if values[k] < values[k-1] {
			t.Fatalf("eigenvalues not ascending: %v", values)
		}
	}
	for r := range n {
		for c := range n {
			var rec, dot float64
			for k := range n {
				rec += v[r*n+k] * values[k] * v[c*n+k]
				dot += v[k*n+r] * v[k*n+c]
			}
			if !near(rec, a[r*n+c], 1e-12) {
				t.Fatalf("V·Λ·Vᵀ (%d, %d) = %v, want %v", r, c, rec, a[r*n+c])
			}
			if id := map[bool]float64{true: 1, false: 0}[r == c]; !near(dot, id, 1e-12) {
				t.Fatalf("VᵀV (%d, %d) = %v, want %v", r, c, dot, id)
			}
		}
	}
	psd := matMul(a, a, n) // aᵀa = a²: symmetric positive semi-definite
	symmetrize(psd, n)
	root, err := SymmetricSqrt(psd, n)
	if err != nil {
		t.Fatal(err)
	}
	sq := matMul(root, root, n)
	for i := range sq {
		if !near(sq[i], psd[i], 1e-10) {
			t.Fatalf("√M·√M [%d] = %v, want %v", i, sq[i], psd[i])
		}
	}
	if _, _, err := SymmetricEigen([]float64{1, 2, 3, 4}, 2); err == nil {
		t.Error("an asymmetric matrix: no error")
	}
}

// TestDistancesAndAccuracy: RMSE, PSNR and prompt accuracy on small cases
// worked by hand.
func TestDistancesAndAccuracy(t *testing.T) {
	a, b := []float32{0, 1, 2, 3}, []float32{1, 1, 0, 3} // squared errors 1, 0, 4, 0: mse 1.25
	if got, _ := RMSE(a, b); !near(got, math.Sqrt(1.25), 1e-15) {
		t.Errorf("RMSE = %v, want √1.25", got)
	}
	if got, _ := PSNR(a, b, 2); !near(got, 10*math.Log10(4/1.25), 1e-15) {
		t.Errorf("PSNR = %v, want 10·log10(4/1.25) = %v", got, 10*math.Log10(4/1.25))
	}
	if got, _ := PSNR(a, a, 1); !math.IsInf(got, 1) {
		t.Errorf("PSNR of identical slices = %v, want +Inf", got)
	}
	if _, err := RMSE(a, b[:3]); err == nil {
		t.Error("RMSE of unequal lengths: no error")
	}
	logits := []float32{
		0.1, 0.9, 0.0, // argmax 1
		2, 2, 1, // tie: 0
		-1, -3, -0.5, // 2
		5, 0, 0, // 0
	}
	if got, _ := PromptAccuracy(logits, 3, []int{1, 0, 1, 2}); got != 0.5 {
		t.Errorf("prompt accuracy %v, want 2 of 4", got)
	}
	if _, err := PromptAccuracy(logits, 3, []int{1, 0, 1, 3}); err == nil {
		t.Error("a class out of range: no error")
	}
}
