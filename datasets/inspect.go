package datasets

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Report is what `data inspect` prints: the counts by image kind and drop reason over the samples
// read, and the first samples.
type Report struct {
	Format  string
	Shards  int
	Stats   Stats
	Samples []InspectedSample
	Grid    string // the PNG written, "" if none
}

// InspectedSample describes one delivered sample.
type InspectedSample struct {
	Key, Caption, Source, Kind string
	OriginalH, OriginalW       int
}

// gridMax bounds the number of images in the inspect grid.
const gridMax = 64

// Inspect reads the sources in order, without shuffling or flipping, until n samples were delivered
// (n <= 0: one whole pass), and writes the first min(n, 64) of them with their captions as a grid PNG
// to gridPNG (skipped when ""). The report holds the counts even when the loader fails.
func Inspect(cfg Config, n int, gridPNG string) (Report, error) {
	cfg.ShuffleBuffer, cfg.Epochs, cfg.BatchSize, cfg.RandomFlip = 0, 1, 1, false
	cfg.Buckets = nil // the grid's thumbnails are square
	l, err := New(cfg)
	if err != nil {
		return Report{}, err
	}
	defer l.Close()
	rep := Report{Format: l.format, Shards: len(l.shards)}
	var thumbs []image.Image
	var runErr error
	for n <= 0 || len(rep.Samples) < n {
		b, err := l.Next(context.Background())
		if err != nil {
			if !errors.Is(err, io.EOF) {
				runErr = err
			}
			break
		}
		s := b.Samples[0]
		rep.Samples = append(rep.Samples, InspectedSample{Key: s.Key, Caption: s.Caption, Source: s.Source,
			Kind: s.Kind, OriginalH: s.OriginalH, OriginalW: s.OriginalW})
		if len(thumbs) < gridMax {
			thumbs = append(thumbs, thumbnail(s.Pixels, b.Width, min(b.Width, 192)))
		}
	}
	rep.Stats = l.Stats()
	if gridPNG != "" && len(thumbs) > 0 {
		if err := writeGrid(gridPNG, thumbs, rep.Samples); err != nil {
			return rep, err
		}
		rep.Grid = gridPNG
	}
	return rep, runErr
}

// String prints the report for a terminal.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "format %s, %d shards\n", r.Format, r.Shards)
	fmt.Fprintf(&b, "read %d samples, delivered %d, dropped %d\n", r.Stats.Read, r.Stats.Delivered, r.Stats.Dropped())
	fmt.Fprintf(&b, "by kind:\n")
	for _, k := range []string{"jpeg", "png", "webp"} {
		fmt.Fprintf(&b, "  %-20s %d\n", k, r.Stats.Kinds[k])
	}
	fmt.Fprintf(&b, "dropped samples by reason:\n")
	for _, name := range SampleReasons {
		if v := r.Stats.Drops[name]; v > 0 {
			fmt.Fprintf(&b, "  %-20s %d   %s\n", name, v, r.Stats.LastErrors[name])
		}
	}
	fmt.Fprintf(&b, "skipped shards by reason:\n")
	for _, name := range ShardReasons {
		if v := r.Stats.Drops[name]; v > 0 {
			fmt.Fprintf(&b, "  %-20s %d   %s\n", name, v, r.Stats.LastErrors[name])
		}
	}
	fmt.Fprintf(&b, "first samples:\n")
	for i, s := range r.Samples {
		if i == gridMax {
			fmt.Fprintf(&b, "  ... %d more\n", len(r.Samples)-gridMax)
			break
		}
		fmt.Fprintf(&b, "  %-24s %5dx%-5d %-4s %q\n", s.Key, s.OriginalW, s.OriginalH, s.Kind, s.Caption)
	}
	if r.Grid != "" {
		fmt.Fprintf(&b, "grid: %s\n", r.Grid)
	}
	return b.String()
}

// thumbnail turns CHW pixels in [-1, 1] back into an RGB image of side t (bilinear, antialiased).
func thumbnail(chw []float32, side, t int) image.Image {
	n := side * side
	src := rgbImage{w: side, h: side, pix: make([]uint8, 3*n)}
	for i := 0; i < n; i++ {
		for c := 0; c < 3; c++ {
			v := math.Round(float64(chw[c*n+i]+1) * 127.5)
			src.pix[3*i+c] = uint8(min(max(v, 0), 255))
		}
	}
	f, _ := filterNamed("bilinear")
	small := resizeCrop(src, t, t, f, 0, 0, t, t)
	out := image.NewRGBA(image.Rect(0, 0, t, t))
	for i := 0; i < t*t; i++ {
		out.Pix[4*i], out.Pix[4*i+1], out.Pix[4*i+2], out.Pix[4*i+3] = small.pix[3*i], small.pix[3*i+1], small.pix[3*i+2], 255
	}
	return out
}

// writeGrid lays the thumbnails out in a near-square grid, each with up to four lines of caption.
func writeGrid(path string, thumbs []image.Image, samples []InspectedSample) error {
	const lines, lineH, pad = 4, 13, 4
	t := thumbs[0].Bounds().Dx()
	cols := int(math.Ceil(math.Sqrt(float64(len(thumbs)))))
	rows := (len(thumbs) + cols - 1) / cols
	cellW, cellH := t+pad, t+lines*lineH+2*pad
	grid := image.NewRGBA(image.Rect(0, 0, cols*cellW+pad, rows*cellH+pad))
	draw.Draw(grid, grid.Bounds(), image.White, image.Point{}, draw.Src)
	d := &font.Drawer{Dst: grid, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13}
	perLine := max(t/7, 1)
	for i, th := range thumbs {
		x0, y0 := pad+(i%cols)*cellW, pad+(i/cols)*cellH
		draw.Draw(grid, image.Rect(x0, y0, x0+t, y0+t), th, image.Point{}, draw.Src)
		for j, line := range wrap(samples[i].Caption, perLine, lines) {
			d.Dot = fixed.P(x0, y0+t+pad+(j+1)*lineH-3)
			d.DrawString(line)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("inspect grid: %w", err)
	}
	if err := png.Encode(f, grid); err != nil {
		f.Close()
		return fmt.Errorf("inspect grid %s: %w", path, err)
	}
	return f.Close()
}

// wrap breaks s into at most maxLines lines of at most width characters (ASCII only: the basic font
// has no other glyphs), ending with "..." when cut.
func wrap(s string, width, maxLines int) []string {
	clean := []rune{}
	for _, r := range s {
		if r < 32 || r > 126 {
			r = '?'
		}
		clean = append(clean, r)
	}
	var out []string
	for len(clean) > 0 && len(out) < maxLines {
		k := min(width, len(clean))
		if k < len(clean) {
			if sp := strings.LastIndexByte(string(clean[:k]), ' '); sp > 0 {
				k = sp + 1
			}
		}
		out = append(out, strings.TrimSpace(string(clean[:k])))
		clean = clean[k:]
	}
	if len(clean) > 0 && len(out) > 0 {
		last := out[len(out)-1]
		out[len(out)-1] = last[:max(0, min(len(last), width-3))] + "..."
	}
	return out
}
