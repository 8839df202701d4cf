package datasets

import (
	"fmt"
	"math"
)

// This file reproduces PIL's Image.resize (Pillow's libImaging/Resample.c) for 8-bit RGB: separable
// convolution, horizontal pass first, with the filter's support scaled by the downscale factor
// (antialiasing), coefficients normalised and rounded to 22-bit fixed point, and each pass rounded and
// clipped to 8 bits. Given the same RGB input it gives PIL's output bit for bit (TestResizeMatchesPIL);
// torchvision's Resize on a PIL image calls exactly this. NEAREST follows Pillow's ImagingScaleAffine.

// precisionBits is Pillow's PRECISION_BITS (32 - 8 - 2).
const precisionBits = 22

// resampleFilter is one of PIL's resampling filters; nearest has no kernel.
type resampleFilter struct {
	name    string
	support float64
	kernel  func(float64) float64
}

var resampleFilters = []*resampleFilter{
	{"nearest", 0, nil},
	{"box", 0.5, func(x float64) float64 {
		if x > -0.5 && x <= 0.5 {
			return 1
		}
		return 0
	}},
	{"bilinear", 1, func(x float64) float64 {
		x = math.Abs(x)
		if x < 1 {
			return 1 - x
		}
		return 0
	}},
	{"hamming", 1, func(x float64) float64 {
		x = math.Abs(x)
		if x == 0 {
			return 1
		}
		if x >= 1 {
			return 0
		}
		x *= math.Pi
		return math.Sin(x) / x * (0.54 + 0.46*math.Cos(x))
	}},
	{"bicubic", 2, func(x float64) float64 {
		const a = -0.5
		x = math.Abs(x)
		if x < 1 {
			return ((a+2)*x-(a+3))*x*x + 1
		}
		if x < 2 {
			return (((x-5)*x+8)*x - 4) * a
		}
		return 0
	}},
	{"lanczos", 3, func(x float64) float64 {
		if x >= -3 && x < 3 {
			return sinc(x) * sinc(x/3)
		}
		return 0
	}},
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x *= math.Pi
	return math.Sin(x) / x
}

func filterNamed(name string) (*resampleFilter, error) {
	for _, f := range resampleFilters {
		if f.name == name {
			return f, nil
		}
	}
	return nil, fmt.Errorf("interpolation %q, want nearest, box, bilinear, hamming, bicubic or lanczos", name)
}

// coeffs are the fixed-point weights of output positions [first, first+count) of a resize from
// inSize to outSize: output i reads inputs min[i] .. min[i]+n[i]-1 with weights k[i*ksize:].
type coeffs struct {
	min, n []int
	k      []int32
	ksize  int
}

// precomputeCoeffs is Pillow's precompute_coeffs followed by normalize_coeffs_8bpc.
func precomputeCoeffs(inSize, outSize int, f *resampleFilter, first, count int) coeffs {
	scale := float64(inSize) / float64(outSize)
	filterscale := max(scale, 1)
	support := f.support * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c := coeffs{min: make([]int, count), n: make([]int, count), k: make([]int32, count*ksize), ksize: ksize}
	w := make([]float64, ksize)
	ss := 1 / filterscale
	for i := 0; i < count; i++ {
		center := (float64(first+i) + 0.5) * scale
		xmin := max(int(center-support+0.5), 0) // C's (int) truncates toward zero, then clamps at 0
		xmax := min(int(center+support+0.5), inSize) - xmin
		var ww float64
		for x := 0; x < xmax; x++ {
			w[x] = f.kernel((float64(x+xmin) - center + 0.5) * ss)
			ww += w[x]
		}
		k := c.k[i*ksize : (i+1)*ksize]
		for x := 0; x < xmax; x++ {
			v := w[x]
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		c.min[i], c.n[i] = xmin, xmax
	}
	return c
}

// clip8 is Pillow's clip8: drop the fraction bits and clamp to a byte.
func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resizeCrop returns the window [x0, x0+w) × [y0, y0+h) of src resized to nw×nh with filter f,
// exactly as PIL's resize followed by a crop, computing only the pixels the window needs.
func resizeCrop(src rgbImage, nw, nh int, f *resampleFilter, x0, y0, w, h int) rgbImage {
	if f.kernel == nil {
		return nearestCrop(src, nw, nh, x0, y0, w, h)
	}
	needH, needV := nw != src.w, nh != src.h
	// Rows of src the vertical pass reads.
	r0, r1 := y0, y0+h
	var cv coeffs
	if needV {
		cv = precomputeCoeffs(src.h, nh, f, y0, h)
		r0, r1 = cv.min[0], 0
		for i := range cv.min {
			r0 = min(r0, cv.min[i])
			r1 = max(r1, cv.min[i]+cv.n[i])
		}
	}
	// Horizontal pass: rows r0..r1 of src, output columns x0..x0+w.
	tmp := rgbImage{w: w, h: r1 - r0, pix: make([]uint8, w*(r1-r0)*3)}
	if needH {
		ch := precomputeCoeffs(src.w, nw, f, x0, w)
		for y := r0; y < r1; y++ {
			in := src.pix[y*src.w*3 : (y+1)*src.w*3]
			out := tmp.pix[(y-r0)*w*3 : (y-r0+1)*w*3]
			for x := 0; x < w; x++ {
				k := ch.k[x*ch.ksize : x*ch.ksize+ch.n[x]]
				px := in[ch.min[x]*3 : (ch.min[x]+len(k))*3]
				s0, s1, s2 := int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1)), int32(1<<(precisionBits-1))
				for j, kj := range k {
					p := px[3*j : 3*j+3 : 3*j+3]
					s0 += int32(p[0]) * kj
					s1 += int32(p[1]) * kj
					s2 += int32(p[2]) * kj
				}
				o := out[3*x : 3*x+3 : 3*x+3]
				o[0], o[1], o[2] = clip8(s0), clip8(s1), clip8(s2)
			}
		}
	} else {
		for y := r0; y < r1; y++ {
			copy(tmp.pix[(y-r0)*w*3:(y-r0+1)*w*3], src.pix[(y*src.w+x0)*3:(y*src.w+x0+w)*3])
		}
	}
	if !needV {
		return tmp
	}
	// Vertical pass.
	out := rgbImage{w: w, h: h, pix: make([]uint8, w*h*3)}
	stride := w * 3
	acc := make([]int32, stride)
	for y := 0; y < h; y++ {
		k := cv.k[y*cv.ksize : y*cv.ksize+cv.n[y]]
		for i := range acc {
			acc[i] = 1 << (precisionBits - 1)
		}
		base := (cv.min[y] - r0) * stride
		for j, kj := range k {
			row := tmp.pix[base+j*stride : base+(j+1)*stride]
			a := acc[:len(row)] // lets the compiler drop the bounds check
			for i, v := range row {
				a[i] += int32(v) * kj
			}
		}
		o := out.pix[y*stride : (y+1)*stride]
		o = o[:len(acc)]
		for i, v := range acc {
			o[i] = clip8(v)
		}
	}
	return out
}

// nearestCrop is Pillow's ImagingScaleAffine for NEAREST: the source coordinate of output x is
// floor(x0 + (x+0.5)*scale), accumulated by repeated addition as Pillow does.
func nearestCrop(src rgbImage, nw, nh, x0, y0, w, h int) rgbImage {
	index := func(inSize, outSize, first, count int) []int {
		a := float64(inSize) / float64(outSize)
		pos := a * 0.5
		idx := make([]int, count)
		for x := 0; x < first+count; x++ {
			if x >= first {
				idx[x-first] = min(max(int(pos), 0), inSize-1)
			}
			pos += a
		}
		return idx
	}
	xs, ys := index(src.w, nw, x0, w), index(src.h, nh, y0, h)
	out := rgbImage{w: w, h: h, pix: make([]uint8, w*h*3)}
	for y, sy := range ys {
		in := src.pix[sy*src.w*3:]
		o := out.pix[y*w*3:]
		for x, sx := range xs {
			o[3*x], o[3*x+1], o[3*x+2] = in[3*sx], in[3*sx+1], in[3*sx+2]
		}
	}
	return out
}
