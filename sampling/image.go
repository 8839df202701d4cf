package sampling

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/golcm/golcm/models/nn"
)

// This file holds the sampler's image ends: the init image going into the
// VAE (VaeImageProcessor.preprocess) and the decoded pixels coming out
// (VaeImageProcessor.postprocess), plus PNG grids for validation.

// encodeImage is LatentConsistencyModelImg2ImgPipeline.prepare_latents up to
// the noising: the init image at the request's size, in [-1, 1], encoded
// with one posterior sample (latent_dist.sample), times scaling_factor, and
// repeated for every prompt as diffusers repeats one image's latents.
func (s *Sampler) encodeImage(r *request, gauss func(int) []float32) ([]float32, error) {
	pixels := ImagePixels(r.InitImage, r.Width, r.Height)
	x := tensors.FromFlatDataAndDimensions(pixels, 1, 3, r.Height, r.Width)
	channels := s.pipe.VAE.Config.LatentChannels
	noise := tensors.FromFlatDataAndDimensions(gauss(channels*r.latentH*r.latentW), 1, channels, r.latentH, r.latentW)
	z, err := s.vae.EncodeLatents(x, noise, 1)
	if err != nil {
		return nil, fmt.Errorf("sampler: init image: %w", err)
	}
	one, _, err := nn.TensorFloat32(z)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, r.batch*len(one))
	for range r.batch {
		out = append(out, one...)
	}
	return out, nil
}

// ImagePixels turns an image into VAE input [3, height, width] row-major:
// resized when its size differs (Catmull-Rom; diffusers resizes with PIL's
// Lanczos, so a resized image differs slightly), alpha dropped, each
// channel v/255 then 2x-1 in float32 as VaeImageProcessor does.
func ImagePixels(img image.Image, width, height int) []float32 {
	b := img.Bounds()
	if b.Dx() != width || b.Dy() != height {
		dst := image.NewNRGBA(image.Rect(0, 0, width, height))
		xdraw.CatmullRom.Scale(dst, dst.Bounds(), img, b, xdraw.Src, nil)
		img, b = dst, dst.Bounds()
	}
	n := width * height
	out := make([]float32, 3*n)
	for y := range height {
		for x := range width {
			c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
			for ch, v := range [3]uint8{c.R, c.G, c.B} {
				out[ch*n+y*width+x] = 2*(float32(v)/255) - 1
			}
		}
	}
	return out
}

// DenormalizeImage is VaeImageProcessor.denormalize on decoded pixels:
// (x/2 + 0.5) clamped to [0, 1], in float32.
func DenormalizeImage(pixels []float32) []float32 {
	out := make([]float32, len(pixels))
	for i, v := range pixels {
		out[i] = min(max(v/2+0.5, 0), 1)
	}
	return out
}

// ToRGBA turns values in [0, 1], [batch, 3, height, width] row-major, into
// opaque images the way diffusers' numpy_to_pil does: round(v·255) with
// numpy's round half to even.
func ToRGBA(values []float32, batch, height, width int) []*image.RGBA {
	n := height * width
	images := make([]*image.RGBA, batch)
	for b := range batch {
		img := image.NewRGBA(image.Rect(0, 0, width, height))
		plane := values[b*3*n : (b+1)*3*n]
		for i := range n {
			for ch := range 3 {
				v := math.RoundToEven(float64(float32(plane[ch*n+i] * 255)))
				img.Pix[4*i+ch] = uint8(min(max(v, 0), 255))
			}
			img.Pix[4*i+3] = 255
		}
		images[b] = img
	}
	return images
}

// SavePNG writes one image as a PNG file.
func SavePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("save png: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("save png %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save png %s: %w", path, err)
	}
	return nil
}

// Grid geometry: the basic font's line height and the padding around cells.
const (
	gridLineH = 13
	gridPad   = 4
)

// SaveGrid writes a PNG grid of validation images: rows[i][j] is prompt i
// sampled with steps[j] steps. Each row sits under its prompt (cut to the
// grid's width) and each column under "<steps> steps"; either label list
// may be nil, and a nil image leaves a gap. Text is drawn in the 7×13 basic
// font, ASCII only (other runes become "?").
func SaveGrid(path string, rows [][]*image.RGBA, prompts []string, steps []int) error {
	colLabels := make([]string, len(steps))
	for j, n := range steps {
		colLabels[j] = fmt.Sprintf("%d steps", n)
	}
	return SaveLabelledGrid(path, rows, prompts, colLabels)
}

// SaveLabelledGrid writes a PNG grid of images, rows[i][j] in row i and
// column j, each row under rowLabels[i] and each column under colLabels[j]
// (cut to the cell's width), as SaveGrid draws them.
func SaveLabelledGrid(path string, rows [][]*image.RGBA, rowLabels, colLabels []string) error {
	cellW, cellH, cols := 0, 0, 0
	for _, row := range rows {
		cols = max(cols, len(row))
		for _, img := range row {
			if img != nil {
				cellW, cellH = max(cellW, img.Bounds().Dx()), max(cellH, img.Bounds().Dy())
			}
		}
	}
	if cellW == 0 {
		return fmt.Errorf("save grid %s: no images", path)
	}
	header := 0
	if len(colLabels) > 0 {
		header = gridLineH + gridPad
	}
	rowLabelH := 0
	if len(rowLabels) > 0 {
		rowLabelH = gridLineH + gridPad
	}
	width := cols*(cellW+gridPad) + gridPad
	height := header + len(rows)*(rowLabelH+cellH+gridPad) + gridPad
	grid := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(grid, grid.Bounds(), image.White, image.Point{}, draw.Src)
	d := &font.Drawer{Dst: grid, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13}
	text := func(s string, x, y, maxW int) {
		d.Dot = fixed.P(x, y+gridLineH-3)
		d.DrawString(asciiCut(s, maxW/7))
	}
	for j, label := range colLabels {
		if j < cols {
			text(label, gridPad+j*(cellW+gridPad), gridPad, cellW)
		}
	}
	for i, row := range rows {
		y := header + gridPad + i*(rowLabelH+cellH+gridPad)
		if i < len(rowLabels) {
			text(rowLabels[i], gridPad, y, width-2*gridPad)
		}
		for j, img := range row {
			if img == nil {
				continue
			}
			x := gridPad + j*(cellW+gridPad)
			r := image.Rect(x, y+rowLabelH, x+img.Bounds().Dx(), y+rowLabelH+img.Bounds().Dy())
			draw.Draw(grid, r, img, img.Bounds().Min, draw.Src)
		}
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("save grid: %w", err)
		}
	}
	return SavePNG(path, grid)
}

// asciiCut replaces runes the basic font lacks with "?" and cuts s to n
// characters, ending in "..." when cut.
func asciiCut(s string, n int) string {
	var b strings.Builder
	count := 0
	for _, r := range s {
		if r < 32 || r > 126 {
			r = '?'
		}
		b.WriteRune(r)
		count++
	}
	out := b.String()
	if count <= n {
		return out
	}
	if n <= 3 {
		return out[:max(n, 0)]
	}
	return out[:n-3] + "..."
}
