package datasets

import "math"

// transformSpec is the per-image augmentation of the diffusers training scripts:
//
//	Resize(res, interpolation) → [RandomHorizontalFlip] → CenterCrop(res) | RandomCrop(res) → ToTensor → Normalize([0.5], [0.5])
//
// CropTop/CropLeft are recorded in the resized image, as train_lcm_distill_sdxl_wds.py records c_top,
// c_left for SDXL's micro-conditioning (that script never flips). With RandomFlip, the offsets are
// those of the window in the mirrored resized image (nw - left - res for the unmirrored window), which
// is where the flipped crop really came from; train_text_to_image_sdxl.py instead records
// `x1 = image.width - x1` on the already cropped image (res - left), which is not a position in any
// image, and is deliberately not copied. Without flipping both agree.
//
// With buckets (multi-aspect training) the image goes to the bucket nearest its aspect ratio, Resize
// becomes "cover the bucket" (coverSize) and the crop is the bucket's size; without, the one bucket is
// res×res.
type transformSpec struct {
	res     int
	buckets []Bucket // nil: the square res×res
	filter  *resampleFilter
	center  bool
	flip    bool
}

// placement is where one image's output window comes from.
type placement struct {
	bucket    Bucket // the output size
	nw, nh    int    // size after resizing to cover the bucket
	top, left int    // crop offset in the resized (and, if flipped, mirrored) image
	flipped   bool
}

// resizedSize is torchvision's Resize(res) for an int size: the shorter side becomes res and the
// longer int(res * long / short).
func resizedSize(w, h, res int) (nw, nh int) { return coverSize(w, h, Bucket{res, res}) }

// bucketOf is the output size of a w×h image.
func (t *transformSpec) bucketOf(w, h int) Bucket {
	if t.buckets == nil {
		return Bucket{t.res, t.res}
	}
	return t.buckets[nearestBucket(t.buckets, w, h)]
}

// place draws the flip and the crop for a w×h image from the sample's random source.
func (t *transformSpec) place(w, h int, rnd *sampleRand) placement {
	p := placement{bucket: t.bucketOf(w, h)}
	bw, bh := p.bucket.W, p.bucket.H
	p.nw, p.nh = coverSize(w, h, p.bucket)
	if t.flip {
		p.flipped = rnd.float64() < 0.5
	}
	if t.center {
		// torchvision CenterCrop: int(round((h - th) / 2.0)) with Python's round-half-to-even.
		p.top = int(math.RoundToEven(float64(p.nh-bh) / 2))
		p.left = int(math.RoundToEven(float64(p.nw-bw) / 2))
	} else {
		p.top = rnd.intN(p.nh - bh + 1)
		p.left = rnd.intN(p.nw - bw + 1)
	}
	return p
}

// normLUT maps a byte to ToTensor's v/255 followed by Normalize(0.5, 0.5), in float32 as torch
// computes it.
var normLUT = func() (lut [256]float32) {
	for v := range lut {
		x := float32(v) / 255
		lut[v] = (x - 0.5) / 0.5
	}
	return lut
}()

// apply writes img's output window to dst (3×H×W of its bucket, CHW, in [-1, 1]; dst is grown when
// short) and returns it with its placement.
func (t *transformSpec) apply(img rgbImage, rnd *sampleRand, dst []float32) ([]float32, placement) {
	p := t.place(img.w, img.h, rnd)
	return t.render(img, p, dst), p
}

// render writes the window p places in img to dst (grown when short) and returns it.
func (t *transformSpec) render(img rgbImage, p placement, dst []float32) []float32 {
	bw, bh := p.bucket.W, p.bucket.H
	left := p.left
	if p.flipped { // the window of the mirrored image, in unmirrored coordinates
		left = p.nw - p.left - bw
	}
	win := resizeCrop(img, p.nw, p.nh, t.filter, left, p.top, bw, bh)
	n := bw * bh
	if cap(dst) < 3*n {
		dst = make([]float32, 3*n)
	}
	dst = dst[:3*n]
	r, g, b := dst[:n], dst[n:2*n], dst[2*n:3*n]
	for y := 0; y < bh; y++ {
		row := win.pix[y*bw*3 : (y+1)*bw*3]
		o := y * bw
		for x := 0; x < bw; x++ {
			sx := x
			if p.flipped {
				sx = bw - 1 - x
			}
			r[o+x], g[o+x], b[o+x] = normLUT[row[3*sx]], normLUT[row[3*sx+1]], normLUT[row[3*sx+2]]
		}
	}
	return dst
}
