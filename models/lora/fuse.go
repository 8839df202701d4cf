package lora

import (
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/golcm/golcm/models/nn"
)

// Fuse adds every adapter's update into the base weights in place,
// W += (alpha/r)·B·A, so sampling runs the plain UNet at full speed (PEFT's
// merge / diffusers' fuse_lora). For a k×k convolution the 1×1 B composed
// with the k×k A is itself a k×k kernel with the same stride and padding:
// W[o,i,y,x] += scale·Σ_r B[o,r]·A[r,i,y,x]. Do not also run fused weights
// with the adapters bound, or the update counts twice.
func (a *Adapters) Fuse(base *nn.Weights) error { return a.merge(base, 1) }

// Unfuse subtracts what Fuse added, giving back the base weights up to
// float32 rounding.
func (a *Adapters) Unfuse(base *nn.Weights) error { return a.merge(base, -1) }

// merge adds sign·scale·B·A to each adapted weight. The product is
// accumulated in float64 and rounded once, so Fuse then Unfuse returns each
// weight to within one float32 rounding of where it started.
func (a *Adapters) merge(base *nn.Weights, sign float64) error {
	for _, m := range a.Modules {
		name := m.Name + ".weight"
		w, dims, err := base.Float32(name)
		if err != nil {
			return fmt.Errorf("lora fuse %s: base %w", m.Name, err)
		}
		want := []int{m.Out, m.In}
		if m.Conv() {
			want = append(want, m.KH, m.KW)
		}
		if !slices.Equal(dims, want) {
			return fmt.Errorf("lora fuse %s: base weight is %v, the adapter is for %v", m.Name, dims, want)
		}
		A, ad, err := a.Weights.Float32(ParamA(m.Name))
		if err != nil {
			return fmt.Errorf("lora fuse %s: %w", m.Name, err)
		}
		B, bd, err := a.Weights.Float32(ParamB(m.Name))
		if err != nil {
			return fmt.Errorf("lora fuse %s: %w", m.Name, err)
		}
		if !slices.Equal(ad, m.AShape()) || !slices.Equal(bd, m.BShape()) {
			return fmt.Errorf("lora fuse %s: adapter weights are %v and %v, want %v and %v",
				m.Name, ad, bd, m.AShape(), m.BShape())
		}
		addLowRank(w, B, A, m.Out, m.Rank, len(w)/m.Out, sign*m.Scale())
		base.SetFloat32(name, w, dims...)
	}
	return nil
}

// addLowRank does w[o,j] += scale·Σ_k b[o,k]·a[k,j] for w [out, cols],
// b [out, r] and a [r, cols], rows spread over the CPUs (SD1.5 at r=64 is
// about 5·10¹⁰ multiply-adds). Four rows of a are combined per pass over the
// accumulator, which more than halves the memory traffic.
func addLowRank(w, b, a []float32, out, r, cols int, scale float64) {
	workers := min(runtime.GOMAXPROCS(0), out)
	var wg sync.WaitGroup
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acc := make([]float64, cols)
			for o := wk; o < out; o += workers {
				clear(acc)
				bo := b[o*r : (o+1)*r]
				k := 0
				for ; k+4 <= r; k += 4 {
					b0, b1, b2, b3 := float64(bo[k]), float64(bo[k+1]), float64(bo[k+2]), float64(bo[k+3])
					a0, a1 := a[k*cols:(k+1)*cols], a[(k+1)*cols:(k+2)*cols]
					a2, a3 := a[(k+2)*cols:(k+3)*cols], a[(k+3)*cols:(k+4)*cols]
					a0, a1, a2, a3 = a0[:len(acc)], a1[:len(acc)], a2[:len(acc)], a3[:len(acc)] // one bounds check
					for j, v := range acc {
						acc[j] = v + b0*float64(a0[j]) + b1*float64(a1[j]) + b2*float64(a2[j]) + b3*float64(a3[j])
					}
				}
				for ; k < r; k++ {
					bk, ak := float64(bo[k]), a[k*cols:(k+1)*cols]
					for j := range acc {
						acc[j] += bk * float64(ak[j])
					}
				}
				dst := w[o*cols : (o+1)*cols]
				for j, v := range acc {
					dst[j] = float32(float64(dst[j]) + scale*v)
				}
			}
		}()
	}
	wg.Wait()
}
