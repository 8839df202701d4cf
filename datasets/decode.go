package datasets

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// rgbImage is an 8-bit RGB image, rows top to bottom, 3 bytes per pixel.
type rgbImage struct {
	w, h int
	pix  []uint8
}

// maxPixels rejects decompression bombs, as PIL's Image.MAX_IMAGE_PIXELS*2 does.
const maxPixels = 2 * 89478485

// sniffFormat names an encoded image's format from its magic bytes: "jpeg", "png", "webp" or "".
func sniffFormat(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff:
		return "jpeg"
	case len(b) >= 8 && string(b[:8]) == "\x89PNG\r\n\x1a\n":
		return "png"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "webp"
	}
	return ""
}

// codec is the decoder and header reader of a sniffed format (nil for others).
func codec(format string) (func(io.Reader) (image.Image, error), func(io.Reader) (image.Config, error)) {
	switch format {
	case "jpeg":
		return jpeg.Decode, jpeg.DecodeConfig
	case "png":
		return png.Decode, png.DecodeConfig
	case "webp":
		return webp.Decode, webp.DecodeConfig
	}
	return nil, nil
}

// imageDims reads an encoded image's size from its header; ok is false when the header does not parse
// (decodeRGB then says why).
func imageDims(data []byte) (w, h int, ok bool) {
	_, config := codec(sniffFormat(data))
	if config == nil {
		return 0, 0, false
	}
	defer func() { recover() }() // a header parser bug on hostile input is the decoder's to report
	cfg, err := config(bytes.NewReader(data))
	if err != nil {
		return 0, 0, false
	}
	return cfg.Width, cfg.Height, true
}

// decodeRGB decodes a JPEG, PNG or WebP (lossy, lossless, with or without alpha) into RGB. Alpha is
// dropped without compositing, as PIL's Image.convert("RGB") drops it in the diffusers scripts.
// Remaining differences from PIL, all within a few levels: Go's JPEG decoder upsamples chroma by
// replication and uses its own IDCT (libjpeg-turbo uses "fancy" triangular upsampling); CMYK JPEGs
// and 16-bit grey PNGs go through Go's colour models rather than PIL's mode conversions.
func decodeRGB(data []byte) (img rgbImage, format string, err error) {
	defer func() {
		if p := recover(); p != nil { // a decoder bug on hostile input must not stop the run
			err = fmt.Errorf("decoder panic: %v", p)
		}
	}()
	format = sniffFormat(data)
	decode, config := codec(format)
	if decode == nil {
		return img, "", errors.New("not a JPEG, PNG or WebP image")
	}
	cfg, err := config(bytes.NewReader(data))
	if err != nil {
		return img, format, fmt.Errorf("%s: %w", format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxPixels {
		return img, format, fmt.Errorf("%s: %dx%d pixels", format, cfg.Width, cfg.Height)
	}
	m, err := decode(bytes.NewReader(data))
	if err != nil {
		return img, format, fmt.Errorf("%s: %w", format, err)
	}
	return toRGB(m), format, nil
}

// toRGB converts a decoded image to packed RGB, with fast paths for the types Go's decoders return.
func toRGB(m image.Image) rgbImage {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	out := rgbImage{w: w, h: h, pix: make([]uint8, w*h*3)}
	p := out.pix
	switch m := m.(type) {
	case *image.YCbCr:
		ycbcrToRGB(m, p)
	case *image.NYCbCrA:
		ycbcrToRGB(&m.YCbCr, p)
	case *image.NRGBA:
		rgbaRowsToRGB(m.Pix, m.Stride, w, h, p)
	case *image.RGBA: // Go's decoders return RGBA only for opaque images, where it equals NRGBA
		rgbaRowsToRGB(m.Pix, m.Stride, w, h, p)
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				i := (y*w + x) * 3
				p[i], p[i+1], p[i+2] = v, v, v
			}
		}
	default:
		i := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBA64Model.Convert(m.At(x, y)).(color.NRGBA64)
				p[i], p[i+1], p[i+2] = uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8)
				i += 3
			}
		}
	}
	return out
}

func rgbaRowsToRGB(pix []uint8, stride, w, h int, p []uint8) {
	for y := 0; y < h; y++ {
		row := pix[y*stride : y*stride+4*w]
		o := p[y*w*3 : (y+1)*w*3]
		for x := 0; x < w; x++ {
			o[3*x], o[3*x+1], o[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
		}
	}
}

func ycbcrToRGB(m *image.YCbCr, p []uint8) {
	b := m.Rect
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		yi := m.YOffset(b.Min.X, y)
		for x := b.Min.X; x < b.Max.X; x++ {
			ci := m.COffset(x, y)
			r, g, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
			p[i], p[i+1], p[i+2] = r, g, bb
			i += 3
			yi++
		}
	}
}
