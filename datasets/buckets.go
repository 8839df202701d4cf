package datasets

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Bucket is one training size (multi-aspect training): every sample is resized to cover it and
// cropped to it, and every batch holds samples of one bucket.
type Bucket struct{ W, H int }

func (b Bucket) String() string { return fmt.Sprintf("%dx%d", b.W, b.H) }

// BucketsAuto is the data.buckets entry that generates the set (GenerateBuckets) for the target area
// resolution² with sides multiples of bucket_step.
const BucketsAuto = "auto"

// maxBucketRatio bounds generated buckets to aspect ratios between 1:4 and 4:1, the extent of SDXL's
// training buckets (512×2048 to 2048×512 at 1024², SDXL report appendix).
const maxBucketRatio = 4.0

// minBucketGap is the least log-ratio step between generated buckets: near 4:1, where neighbouring
// widths give ratios about 3% apart, a bucket that close to the last kept one would cost one more
// compiled step (GoMLX keeps 32 per program) for a crop under 4% different.
const minBucketGap = 0.04

// GenerateBuckets returns, for every width w ≥ h that is a multiple of step, the bucket w×h whose
// height h is the multiple of step giving the area nearest area, with aspect ratio up to 4:1 and at
// least minBucketGap (in log ratio) wider than the last one kept, going outwards from the square;
// then every bucket's transpose. The set is sorted by aspect ratio, tall first. At area 1024² and
// step 64 it holds 25 buckets from 512×1984 to 1984×512, SDXL's range.
func GenerateBuckets(area, step int) []Bucket {
	if step < 1 || area < 1 {
		return nil
	}
	var wide []Bucket
	for w := step; w*step <= area; w += step {
		h := int(math.Round(float64(area)/float64(w)/float64(step))) * step
		if h >= step && w >= h && float64(w) <= maxBucketRatio*float64(h) {
			wide = append(wide, Bucket{w, h})
		}
	}
	// Outwards from the square: w/h ascending (compared exactly by cross-multiplying).
	slices.SortFunc(wide, func(a, b Bucket) int { return a.W*b.H - b.W*a.H })
	var out []Bucket
	last := math.Inf(-1)
	for _, b := range wide {
		if r := math.Log(float64(b.W) / float64(b.H)); r-last >= minBucketGap {
			out = append(out, b)
			last = r
		}
	}
	var tall []Bucket // the transposes, tallest first
	for i := len(out) - 1; i >= 0; i-- {
		if b := out[i]; b.W != b.H {
			tall = append(tall, Bucket{b.H, b.W})
		}
	}
	return append(tall, out...)
}

// bucketSizes returns the buckets c.Buckets names (nil when multi-aspect training is off), checking
// every entry; c has its defaults.
func (c Config) bucketSizes() ([]Bucket, error) {
	if len(c.Buckets) == 0 {
		return nil, nil
	}
	if len(c.Buckets) == 1 && strings.TrimSpace(c.Buckets[0]) == BucketsAuto {
		out := GenerateBuckets(c.Resolution*c.Resolution, c.BucketStep)
		if len(out) == 0 {
			return nil, fmt.Errorf("datasets config: buckets = [\"auto\"] with resolution %d and bucket_step %d gives no bucket", c.Resolution, c.BucketStep)
		}
		return out, nil
	}
	var out []Bucket
	for _, s := range c.Buckets {
		b, err := parseBucket(s)
		if err != nil {
			return nil, fmt.Errorf("datasets config: buckets entry %q: %w (or the single entry \"auto\")", s, err)
		}
		if slices.Contains(out, b) {
			return nil, fmt.Errorf("datasets config: buckets entry %q appears twice", s)
		}
		out = append(out, b)
	}
	return out, nil
}

// TrainingSizes returns the sizes batches come in: the buckets data.buckets names or generates, or
// the single square resolution×resolution when multi-aspect training is off.
func (c Config) TrainingSizes() ([]Bucket, error) {
	d := DefaultConfig()
	if c.Resolution == 0 {
		c.Resolution = d.Resolution
	}
	if c.BucketStep == 0 {
		c.BucketStep = d.BucketStep
	}
	b, err := c.bucketSizes()
	if err != nil || b != nil {
		return b, err
	}
	return []Bucket{{c.Resolution, c.Resolution}}, nil
}

func parseBucket(s string) (Bucket, error) {
	ws, hs, ok := strings.Cut(strings.TrimSpace(s), "x")
	if !ok {
		return Bucket{}, fmt.Errorf("want WIDTHxHEIGHT, e.g. \"1152x896\"")
	}
	w, errW := strconv.Atoi(ws)
	h, errH := strconv.Atoi(hs)
	if errW != nil || errH != nil || w < 1 || h < 1 {
		return Bucket{}, fmt.Errorf("want positive integers WIDTHxHEIGHT, e.g. \"1152x896\"")
	}
	return Bucket{w, h}, nil
}

// nearestBucket is the index of the bucket whose aspect ratio is nearest w/h in log ratio, so that
// 2:1 and 1:2 are equally far from 1:1; ties go to the earlier bucket.
func nearestBucket(buckets []Bucket, w, h int) int {
	best, bestD := 0, math.Inf(1)
	r := math.Log(float64(w) / float64(h))
	for i, b := range buckets {
		if d := math.Abs(r - math.Log(float64(b.W)/float64(b.H))); d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

// coverSize is the size a w×h image is resized to so that it covers b with its aspect ratio kept:
// the side that binds becomes b's, the other int(b's side × ratio), which is at least b's. For a
// square bucket it is torchvision's Resize(res) (resizedSize).
func coverSize(w, h int, b Bucket) (nw, nh int) {
	if w*b.H >= h*b.W { // the image is at least as wide as the bucket: its height binds
		return max(b.H*w/h, b.W), b.H
	}
	return b.W, max(b.W*h/w, b.H)
}
