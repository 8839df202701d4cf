package metrics

import (
	"fmt"
	"math"
	"sort"
)

// maxJacobiSweeps bounds the cyclic Jacobi iteration; it converges
// quadratically, in well under 20 sweeps for the matrices met here.
const maxJacobiSweeps = 100

// SymmetricEigen decomposes a symmetric matrix a [n·n, row-major] as
// V·diag(values)·Vᵀ with the cyclic Jacobi method: rotations zero one
// off-diagonal pair at a time until the off-diagonal mass is rounding
// noise. values come ascending; vectors holds the eigenvectors as columns
// (vectors[r·n+k] is row r of vector k). a is not changed.
func SymmetricEigen(a []float64, n int) (values, vectors []float64, err error) {
	if n <= 0 || len(a) != n*n {
		return nil, nil, fmt.Errorf("eigen: %d values are not a %d×%d matrix", len(a), n, n)
	}
	m := append([]float64(nil), a...)
	v := make([]float64, n*n)
	var total float64
	for i := range n {
		v[i*n+i] = 1
		for j := range n {
			if x := m[i*n+j]; math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, nil, fmt.Errorf("eigen: entry (%d, %d) is %v", i, j, x)
			} else if j != i && x != m[j*n+i] {
				return nil, nil, fmt.Errorf("eigen: not symmetric: (%d, %d) = %v, (%d, %d) = %v", i, j, x, j, i, m[j*n+i])
			}
			total += m[i*n+j] * m[i*n+j]
		}
	}
	converged := false
	for range maxJacobiSweeps {
		var off float64
		for p := range n {
			for q := p + 1; q < n; q++ {
				off += m[p*n+q] * m[p*n+q]
			}
		}
		if off <= 1e-30*total || off == 0 {
			converged = true
			break
		}
		for p := range n {
			for q := p + 1; q < n; q++ {
				rotate(m, v, n, p, q)
			}
		}
	}
	if !converged {
		return nil, nil, fmt.Errorf("eigen: Jacobi iteration did not converge in %d sweeps", maxJacobiSweeps)
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return m[order[i]*n+order[i]] < m[order[j]*n+order[j]] })
	values, vectors = make([]float64, n), make([]float64, n*n)
	for k, src := range order {
		values[k] = m[src*n+src]
		for r := range n {
			vectors[r*n+k] = v[r*n+src]
		}
	}
	return values, vectors, nil
}

// rotate applies the Jacobi rotation J (c on the (p,p) and (q,q)
// diagonal, s at (p,q), -s at (q,p)) that zeroes m[p][q]: m ← Jᵀ·m·J and
// v ← v·J. With θ = (m_qq - m_pp)/(2 m_pq), t = tan φ is the smaller root
// of t² + 2θt - 1 = 0, which keeps the rotation angle at most π/4.
func rotate(m, v []float64, n, p, q int) {
	apq := m[p*n+q]
	if apq == 0 {
		return
	}
	theta := (m[q*n+q] - m[p*n+p]) / (2 * apq)
	t := 1 / (math.Abs(theta) + math.Sqrt(theta*theta+1))
	if theta < 0 {
		t = -t
	}
	c := 1 / math.Sqrt(t*t+1)
	s := t * c
	for k := range n { // columns p and q: m·J
		kp, kq := m[k*n+p], m[k*n+q]
		m[k*n+p], m[k*n+q] = c*kp-s*kq, s*kp+c*kq
	}
	for k := range n { // rows p and q: Jᵀ·(m·J)
		pk, qk := m[p*n+k], m[q*n+k]
		m[p*n+k], m[q*n+k] = c*pk-s*qk, s*pk+c*qk
	}
	m[p*n+q], m[q*n+p] = 0, 0 // zero in exact arithmetic
	for k := range n {
		kp, kq := v[k*n+p], v[k*n+q]
		v[k*n+p], v[k*n+q] = c*kp-s*kq, s*kp+c*kq
	}
}
