package datasets

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The generated set at SDXL's 1024² and step 64: sides multiples of 64, areas near 1024², both
// orientations of every bucket, ratios from 1:4 to 4:1 with no wide gap between neighbours.
func TestGenerateBucketsSDXL(t *testing.T) {
	const area, step = 1024 * 1024, 64
	bs := GenerateBuckets(area, step)
	if len(bs) < 20 || len(bs) > 32 {
		t.Fatalf("%d buckets %v, want between 20 and 32 (SDXL used 40 with several heights per width; one compiled step per bucket, 32 at most)", len(bs), bs)
	}
	for _, want := range []Bucket{{1024, 1024}, {512, 1984}, {1984, 512}, {1152, 896}, {896, 1152}} {
		if !slices.Contains(bs, want) {
			t.Errorf("the set lacks %v: %v", want, bs)
		}
	}
	for _, b := range bs {
		if b.W%step != 0 || b.H%step != 0 {
			t.Errorf("%v: a side is not a multiple of %d", b, step)
		}
		// Rounding the height to a multiple of 64 moves the area by at most 32·w; w ≤ 2048 and
		// w·h ≈ 1024² keep that within 32/512 = 6.25%.
		if d := math.Abs(float64(b.W*b.H)/area - 1); d > 0.0625 {
			t.Errorf("%v: area %d is %.1f%% from %d", b, b.W*b.H, 100*d, area)
		}
		if r := float64(b.W) / float64(b.H); r < 0.25 || r > 4 {
			t.Errorf("%v: ratio %.3f outside [1/4, 4]", b, r)
		}
		if !slices.Contains(bs, Bucket{b.H, b.W}) {
			t.Errorf("%v has no transpose in the set", b)
		}
	}
	for i := 1; i < len(bs); i++ {
		prev, cur := bs[i-1], bs[i]
		gap := math.Log(float64(cur.W)/float64(cur.H)) - math.Log(float64(prev.W)/float64(prev.H))
		if gap < minBucketGap || gap > 0.2 {
			t.Errorf("log-ratio step %v → %v is %.3f, want in [%g, 0.2]: sorted tall to wide, no wide gap", prev, cur, gap, minBucketGap)
		}
	}
}

// bucketImage is a w×h PNG, black but for a 2×2 white marker with top-left corner (mx, my).
func bucketImage(t *testing.T, w, h, mx, my int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{0, 0, 0, 255}
			if x >= mx && x < mx+2 && y >= my && y < my+2 {
				c = color.NRGBA{255, 255, 255, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return pngBytes(t, img)
}

// Samples go to the bucket nearest their aspect ratio in log ratio; every batch has the one shape of
// its bucket, in Height, Width, Pixels and time_ids.
func TestBucketAssignmentAndBatchShapes(t *testing.T) {
	dir := t.TempDir()
	// Buckets: 32x32 (ratio 1), 48x24 (2), 24x48 (1/2), 40x24 (5/3). By hand, log ratios 0, 0.693,
	// -0.693, 0.511:
	sizes := []struct {
		w, h int
		want Bucket
	}{
		{60, 30, Bucket{48, 24}},  // log 2 = 0.693: exactly 2:1
		{30, 60, Bucket{24, 48}},  // -0.693
		{40, 40, Bucket{32, 32}},  // 0
		{64, 40, Bucket{40, 24}},  // log 1.6 = 0.470: 0.041 from 5:3, 0.223 from 2:1
		{52, 40, Bucket{40, 24}},  // log 1.3 = 0.262: 0.249 from 5:3, 0.262 from 1:1
		{48, 40, Bucket{32, 32}},  // log 1.2 = 0.182: 0.182 from 1:1, 0.329 from 5:3
		{90, 30, Bucket{48, 24}},  // log 3 = 1.099: 2:1 is nearest
		{33, 100, Bucket{24, 48}}, // -1.108
	}
	var members []member
	want := map[string]Bucket{}
	for rep := 0; rep < 3; rep++ {
		for i, sz := range sizes {
			key := fmt.Sprintf("s%d_%d", rep, i)
			members = append(members, m(key+".png", bucketImage(t, sz.w, sz.h, 0, 0)), m(key+".txt", key))
			want[key] = sz.want
		}
	}
	writeTar(t, filepath.Join(dir, "a.tar"), 0, members...)
	cfg := Config{Sources: []string{filepath.Join(dir, "a.tar")}, Buckets: []string{"32x32", "48x24", "24x48", "40x24"},
		BatchSize: 2, ShuffleBuffer: 6, Seed: 5, Epochs: 2, RandomFlip: true, Workers: 2}
	batches := collect(t, mustLoader(t, cfg))
	if len(batches) != 24 { // 3 of each size: buckets hold 6, 6, 6 and 6 samples per epoch
		t.Errorf("%d batches, want 24", len(batches))
	}
	for i, b := range batches {
		got := Bucket{b.Width, b.Height}
		if len(b.Pixels) != len(b.Samples)*3*b.Width*b.Height || len(b.Samples) != 2 {
			t.Fatalf("batch %d: %d samples, %d pixels for %v", i, len(b.Samples), len(b.Pixels), got)
		}
		ids := b.TimeIDs()
		for j, s := range b.Samples {
			if want[s.Key] != got {
				t.Errorf("batch %d: %s (%dx%d) is in bucket %v, want %v", i, s.Key, s.OriginalW, s.OriginalH, got, want[s.Key])
			}
			if len(s.Pixels) != 3*b.Width*b.Height {
				t.Errorf("batch %d: %s has %d pixels", i, s.Key, len(s.Pixels))
			}
			if th, tw := ids[6*j+4], ids[6*j+5]; th != float32(got.H) || tw != float32(got.W) {
				t.Errorf("batch %d: %s target size (%v, %v), want (%d, %d)", i, s.Key, th, tw, got.H, got.W)
			}
		}
	}
}

// time_ids hold the crop actually applied: with nearest resizing by exactly ½, the marker at source
// (mx, my) lands at (mx/2, my/2) of the resized image, so in the output at (my/2 - top, mx/2 - left),
// mirrored (x → W-1-x) when flipped, with top and left read from time_ids.
func TestBucketTimeIDsAreTheCropApplied(t *testing.T) {
	dir := t.TempDir()
	var members []member
	type src struct{ w, h, mx, my int }
	srcs := map[string]src{}
	for i := 0; i < 12; i++ {
		// 200x96 → bucket 96x48, resized to 100x48 (left in 0..4); 96x200 → 48x96, resized to 48x100.
		s := src{200, 96, 2 * (20 + 3*i), 2 * (5 + i)}
		if i%2 == 1 {
			s = src{96, 200, 2 * (5 + i), 2 * (20 + 3*i)}
		}
		key := fmt.Sprintf("k%02d", i)
		srcs[key] = s
		members = append(members, m(key+".png", bucketImage(t, s.w, s.h, s.mx, s.my)), m(key+".txt", "c"))
	}
	writeTar(t, filepath.Join(dir, "a.tar"), 0, members...)
	for _, flip := range []bool{false, true} {
		cfg := Config{Sources: []string{filepath.Join(dir, "a.tar")}, Buckets: []string{"96x48", "48x96"}, BatchSize: 3,
			Interpolation: "nearest", RandomFlip: flip, Seed: 11, Epochs: 3, Workers: 2}
		lefts, tops, flips := map[int]bool{}, map[int]bool{}, 0
		for _, b := range collect(t, mustLoader(t, cfg)) {
			ids := b.TimeIDs()
			n := b.Width * b.Height
			for j, s := range b.Samples {
				sc := srcs[s.Key]
				oh, ow, top, left, th, tw := ids[6*j], ids[6*j+1], int(ids[6*j+2]), int(ids[6*j+3]), ids[6*j+4], ids[6*j+5]
				if oh != float32(sc.h) || ow != float32(sc.w) || th != float32(b.Height) || tw != float32(b.Width) {
					t.Fatalf("%s: time_ids %v, want original (%d, %d) target (%d, %d)", s.Key, ids[6*j:6*j+6], sc.h, sc.w, b.Height, b.Width)
				}
				nw, nh := sc.w/2, sc.h/2
				if top < 0 || left < 0 || top > nh-b.Height || left > nw-b.Width {
					t.Fatalf("%s: crop (%d, %d) outside the %dx%d resized image", s.Key, top, left, nw, nh)
				}
				// The resized image the crop offsets refer to is mirrored first when flipped.
				mx := sc.mx / 2
				if s.Flipped {
					mx = nw - 1 - mx
					flips++
				}
				wantX, wantY := mx-left, sc.my/2-top
				var gotX, gotY, lit int
				for y := 0; y < b.Height; y++ {
					for x := 0; x < b.Width; x++ {
						if s.Pixels[y*b.Width+x] > 0.9 && s.Pixels[n+y*b.Width+x] > 0.9 {
							gotX, gotY, lit = x, y, lit+1
						}
					}
				}
				if lit != 1 || gotX != wantX || gotY != wantY {
					t.Errorf("%s (flip %v): %d marker pixels, last at (%d, %d); time_ids crop (%d, %d) puts it at (%d, %d)",
						s.Key, s.Flipped, lit, gotX, gotY, top, left, wantX, wantY)
				}
				if b.Width > b.Height {
					lefts[left] = true
				} else {
					tops[top] = true
				}
			}
		}
		if len(lefts) < 3 || len(tops) < 3 || (flip && flips == 0) {
			t.Errorf("flip %v: crops drawn: lefts %v tops %v, %d flips; the fixture does not exercise random crops", flip, lefts, tops, flips)
		}
	}
}

// A run resumed from the Position after any batch, bucket queues half full, draws exactly the
// batches and ends with exactly the counts of the uninterrupted run.
func TestBucketsResumeKeepsBatches(t *testing.T) {
	dir := t.TempDir()
	for s := 0; s < 3; s++ {
		var members []member
		for i := 0; i < 9; i++ {
			key := fmt.Sprintf("t%d_%d", s, i)
			w, h := []int{40, 20, 30, 33}[(i+s)%4], []int{20, 40, 30, 24}[(i+s)%4]
			members = append(members, m(key+".jpg", jpegBytes(t, w, h, i+10*s)))
			if i%5 != 4 {
				members = append(members, m(key+".txt", key)) // every fifth: missing_caption
			}
		}
		members = append(members, m(fmt.Sprintf("bad%d.jpg", s), "not a jpeg"), m(fmt.Sprintf("bad%d.txt", s), "x"))
		writeTar(t, filepath.Join(dir, fmt.Sprintf("%c.tar", 'a'+s)), 0, members...)
	}
	cfg := Config{Sources: []string{filepath.Join(dir, "{a,b,c}.tar")}, Buckets: []string{"16x16", "24x12", "12x24"},
		BatchSize: 5, ShuffleBuffer: 5, Seed: 3, Epochs: 3, RandomFlip: true, Workers: 2}
	full, positions, final := checkResumes(t, "buckets", cfg)
	queued := 0
	for _, p := range positions {
		for _, q := range p.Queues {
			queued += len(q)
		}
	}
	if len(full) < 8 || queued == 0 || final.Drops["partial_batch"] == 0 || final.Drops["missing_caption"] == 0 ||
		final.Drops["undecodable_image"] == 0 {
		t.Fatalf("%d batches, %d queued samples over all positions, drops %v: the fixture does not exercise resuming bucket queues",
			len(full), queued, final.Drops)
	}
	other := cfg
	other.Buckets = []string{"16x16", "12x24", "24x12"}
	if _, err := NewAt(other, positions[2]); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("NewAt with reordered buckets: %v, want a fingerprint error", err)
	}
}

func TestBucketConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		buckets []string
		step    int
		want    string
	}{
		{[]string{"64"}, 0, `"64"`},
		{[]string{"64x0"}, 0, "positive"},
		{[]string{"64x32", "64x32"}, 0, "twice"},
		{[]string{"auto", "64x64"}, 0, `"auto"`},
		{[]string{"auto"}, 1024, "no bucket"},
		{[]string{"auto"}, -8, "bucket_step"},
	} {
		cfg := Config{Sources: []string{"x.tar"}, Resolution: 64, Buckets: tc.buckets, BucketStep: tc.step}
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("buckets %q step %d: %v, want an error naming %s", tc.buckets, tc.step, err, tc.want)
		}
	}
	got, err := Config{Resolution: 64, Buckets: []string{"auto"}, BucketStep: 16}.TrainingSizes()
	if err != nil || !reflect.DeepEqual(got, GenerateBuckets(64*64, 16)) || !slices.Contains(got, Bucket{64, 64}) {
		t.Errorf("TrainingSizes auto: %v, %v", got, err)
	}
	if got, err := (Config{Resolution: 48}).TrainingSizes(); err != nil || !reflect.DeepEqual(got, []Bucket{{48, 48}}) {
		t.Errorf("TrainingSizes without buckets: %v, %v", got, err)
	}
}
