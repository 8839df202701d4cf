package datasets

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// shapeColors and shapeKinds name what synthetic images show, so captions
// describe them.
var (
	shapeColors = []struct {
		name string
		c    color.RGBA
	}{
		{"red", color.RGBA{220, 40, 40, 255}}, {"green", color.RGBA{40, 180, 60, 255}},
		{"blue", color.RGBA{40, 70, 220, 255}}, {"yellow", color.RGBA{230, 210, 40, 255}},
		{"white", color.RGBA{245, 245, 245, 255}}, {"black", color.RGBA{15, 15, 15, 255}},
	}
	shapeKinds = []string{"circle", "square"}
)

// WriteSyntheticImages makes n captioned images of coloured shapes in dir as
// an image folder (PNG files and metadata.jsonl), so a run needs no
// downloaded data. The same seed writes the same files; an existing
// complete folder is reused.
func WriteSyntheticImages(dir string, n, size int, seed uint64) error {
	meta := filepath.Join(dir, "metadata.jsonl")
	if st, err := os.Stat(meta); err == nil && st.Size() > 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	var lines []byte
	for i := range n {
		fg := shapeColors[rng.IntN(len(shapeColors))]
		bg := shapeColors[rng.IntN(len(shapeColors))]
		for bg.name == fg.name {
			bg = shapeColors[rng.IntN(len(shapeColors))]
		}
		kind := shapeKinds[rng.IntN(len(shapeKinds))]
		// Sizes around the training resolution exercise resize and crop.
		w := size + rng.IntN(size/2+1)
		h := size + rng.IntN(size/2+1)
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		cx, cy := w/2+rng.IntN(w/4+1)-w/8, h/2+rng.IntN(h/4+1)-h/8
		r := min(w, h) / 4
		for y := range h {
			for x := range w {
				dx, dy := x-cx, y-cy
				inside := dx*dx+dy*dy <= r*r
				if kind == "square" {
					inside = dx >= -r && dx <= r && dy >= -r && dy <= r
				}
				if inside {
					img.SetRGBA(x, y, fg.c)
				} else {
					img.SetRGBA(x, y, bg.c)
				}
			}
		}
		name := fmt.Sprintf("%05d.png", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := png.Encode(f, img); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		line, _ := json.Marshal(map[string]string{
			"file_name": name,
			"text":      fmt.Sprintf("a %s %s on a %s background", fg.name, kind, bg.name),
		})
		lines = append(append(lines, line...), '\n')
	}
	tmp := meta + ".tmp"
	if err := os.WriteFile(tmp, lines, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, meta)
}
