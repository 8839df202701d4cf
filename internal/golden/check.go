package golden

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// CheckFloat32 (and CheckFloat32Tol, CheckInt64) skip, logging its name, an entry the sidecar lacks.
//
// CheckFloat32 compares got against a float entry with the entry's tolerance: every element must
// satisfy |got-want| <= atol + rtol*|want| (NaN never does). It logs one line
// "golden <sidecar> <entry> max_abs_err=<x> tol=<y>" and reports the worst element on failure.
func (s *Sidecar) CheckFloat32(t testing.TB, entry string, got []float32, gotShape []int) {
	t.Helper()
	s.CheckFloat32Tol(t, entry, got, gotShape, s.Entries[entry].Tol)
}

// CheckFloat32Tol is CheckFloat32 with a tolerance chosen by the caller, for entries that are inputs
// (no tolerance in the sidecar) or computations deliberately less precise than the reference.
func (s *Sidecar) CheckFloat32Tol(t testing.TB, entry string, got []float32, gotShape []int, tol Tol) {
	t.Helper()
	if s.Lacks(t, entry) {
		return
	}
	noteChecked(t)
	want, wantShape := s.Float32(t, entry)
	if want == nil && wantShape == nil {
		return
	}
	if !s.sameShape(t, entry, len(got), gotShape, wantShape) {
		return
	}
	maxErr, worst, worstExcess, failures := 0.0, -1, math.Inf(-1), 0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		err := math.Abs(g - w)
		if g == w { // also lets equal infinities pass
			err = 0
		}
		excess := err - (tol.Atol + tol.Rtol*math.Abs(w))
		if math.IsNaN(err) {
			excess = math.Inf(1)
		}
		if excess > 0 {
			failures++
		}
		if excess > worstExcess {
			worst, worstExcess = i, excess
		}
		if err > maxErr || math.IsNaN(err) {
			maxErr = err
		}
	}
	t.Logf("golden %s %s max_abs_err=%.3g tol=%s", s.Name, entry, maxErr, tol)
	if failures > 0 {
		t.Errorf("golden %s %s: %d of %d elements outside tol %s; worst at %v (flat %d): got %g want %g (abs err %.3g)",
			s.Name, entry, failures, len(want), tol, unflatten(worst, wantShape), worst,
			got[worst], want[worst], math.Abs(float64(got[worst])-float64(want[worst])))
	}
}

// CheckInt64 compares got against an integer entry exactly, logging the same line as CheckFloat32.
func (s *Sidecar) CheckInt64(t testing.TB, entry string, got []int64, gotShape []int) {
	t.Helper()
	if s.Lacks(t, entry) {
		return
	}
	noteChecked(t)
	want, wantShape := s.Int64(t, entry)
	if want == nil && wantShape == nil {
		return
	}
	if !s.sameShape(t, entry, len(got), gotShape, wantShape) {
		return
	}
	var maxErr float64
	first, failures := -1, 0
	for i := range want {
		if got[i] != want[i] {
			if first < 0 {
				first = i
			}
			failures++
			maxErr = max(maxErr, math.Abs(float64(got[i])-float64(want[i])))
		}
	}
	t.Logf("golden %s %s max_abs_err=%.3g tol=exact", s.Name, entry, maxErr)
	if failures > 0 {
		t.Errorf("golden %s %s: %d of %d elements differ; first at %v (flat %d): got %d want %d",
			s.Name, entry, failures, len(want), unflatten(first, wantShape), first, got[first], want[first])
	}
}

// sameShape reports whether got has the reference shape (treating [] and [1] as the same, since the
// fixtures store scalars as [1]) and as many values as the shape says.
func (s *Sidecar) sameShape(t testing.TB, entry string, n int, gotShape, wantShape []int) bool {
	t.Helper()
	norm := func(shape []int) []int {
		if len(shape) == 0 {
			return []int{1}
		}
		return shape
	}
	if !slices.Equal(norm(gotShape), norm(wantShape)) {
		t.Errorf("golden %s %s: shape %v, want %v", s.Name, entry, gotShape, wantShape)
		return false
	}
	want := 1
	for _, d := range wantShape {
		want *= d
	}
	if n != want {
		t.Errorf("golden %s %s: %d values for shape %v, want %d", s.Name, entry, n, gotShape, want)
		return false
	}
	return true
}

// unflatten turns a flat row-major index into a multi-index for error messages.
func unflatten(i int, shape []int) string {
	idx := make([]int, len(shape))
	for d := len(shape) - 1; d >= 0; d-- {
		if shape[d] > 0 {
			idx[d] = i % shape[d]
			i /= shape[d]
		}
	}
	return fmt.Sprint(idx)
}
