package datasets

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// photoJPEG is a 768×640-like JPEG with photo-like detail (smooth shapes plus fine noise), so that
// its size and decode cost resemble a real photograph's (about 100-200 KB at quality 90).
func photoJPEG(tb testing.TB, w, h, seed int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	state := uint32(seed*7919 + 1)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			state = state*1664525 + 1013904223
			noise := float64(state>>24)/255*40 - 20
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			r := 128 + 90*math.Sin(6*fx+float64(seed)) + noise
			g := 128 + 80*math.Cos(5*fy+3*fx) + noise
			b := 128 + 70*math.Sin(9*fx*fy+float64(seed)) + noise
			img.SetNRGBA(x, y, color.NRGBA{clampByte(r), clampByte(g), clampByte(b), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func clampByte(v float64) uint8 { return uint8(min(max(v, 0), 255)) }

// BenchmarkDecode measures decode + resize + crop + normalise throughput at 512×512 output from
// 768×640 JPEGs, through the whole loader with 1 and 2 workers, plus the two stages alone, and prints
// the results as a table.
func BenchmarkDecode(b *testing.B) {
	dir := b.TempDir()
	var members []member
	var jpegs [][]byte
	total := 0
	for i := 0; i < 16; i++ {
		j := photoJPEG(b, 768, 640, i)
		jpegs = append(jpegs, j)
		total += len(j)
		members = append(members, m(fmt.Sprintf("%03d.jpg", i), j), m(fmt.Sprintf("%03d.txt", i), "a caption"))
	}
	shard := filepath.Join(dir, "bench.tar")
	writeTar(b, shard, 0, members...)
	type row struct {
		name string
		ips  float64
	}
	var rows []row
	measure := func(name string, run func(n int)) {
		b.Run(name, func(b *testing.B) {
			run(1) // warm up
			b.ResetTimer()
			start := time.Now()
			run(b.N)
			ips := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(ips, "images/s")
			if len(rows) > 0 && rows[len(rows)-1].name == name {
				rows[len(rows)-1].ips = ips
			} else {
				rows = append(rows, row{name, ips})
			}
		})
	}
	for _, workers := range []int{1, 2} {
		l, err := New(Config{Sources: []string{shard}, Resolution: 512, Workers: workers, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		measure(fmt.Sprintf("loader_workers=%d", workers), func(n int) {
			for i := 0; i < n; i++ {
				if _, err := l.Next(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
		l.Close()
	}
	measure("decode_only", func(n int) {
		for i := 0; i < n; i++ {
			if _, _, err := decodeRGB(jpegs[i%len(jpegs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	img, _, _ := decodeRGB(jpegs[0])
	filter, _ := filterNamed("bilinear")
	tf := transformSpec{res: 512, filter: filter}
	dst := make([]float32, 3*512*512)
	measure("transform_only", func(n int) {
		for i := 0; i < n; i++ {
			tf.apply(img, newSampleRand(1, 0, 0, i), dst)
		}
	})
	fmt.Fprintf(os.Stdout, "\ndecode + transform, 768x640 JPEG (mean %d KB) -> 512x512 bilinear, GOMAXPROCS %d\n",
		total/len(jpegs)/1024, runtimeProcs())
	fmt.Fprintf(os.Stdout, "| %-22s | %10s | %9s |\n|%s|%s|%s|\n", "stage", "images/s", "ms/image", "------------------------", "------------", "-----------")
	for _, r := range rows {
		fmt.Fprintf(os.Stdout, "| %-22s | %10.1f | %9.2f |\n", r.name, r.ips, 1000/r.ips)
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
