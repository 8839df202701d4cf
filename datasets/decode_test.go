package datasets

import (
	"image"
	"image/color"
	"testing"
)

func TestDecodeJPEGPNGWebP(t *testing.T) {
	red, blue := color.NRGBA{220, 10, 30, 255}, color.NRGBA{5, 40, 250, 128}
	gray := image.NewGray(image.Rect(0, 0, 3, 2))
	gray.Pix = []uint8{0, 50, 100, 150, 200, 250}
	pal := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{color.NRGBA{1, 2, 3, 255}, color.NRGBA{9, 8, 7, 255}})
	pal.Pix = []uint8{0, 1}
	nrgba := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	copy(nrgba.Pix, []uint8{200, 100, 50, 0, 10, 20, 30, 77}) // alpha dropped, colour kept (PIL convert("RGB"))
	for _, tc := range []struct {
		name   string
		data   []byte
		format string
		w, h   int
		want   []uint8 // exact RGB, when known
	}{
		{"png gray", pngBytes(t, gray), "png", 3, 2, []uint8{0, 0, 0, 50, 50, 50, 100, 100, 100, 150, 150, 150, 200, 200, 200, 250, 250, 250}},
		{"png paletted", pngBytes(t, pal), "png", 2, 1, []uint8{1, 2, 3, 9, 8, 7}},
		{"png rgba", pngBytes(t, nrgba), "png", 2, 1, []uint8{200, 100, 50, 10, 20, 30}},
		{"webp lossless with alpha", vp8lBytes(4, 3, checkerboard(4, 3, red, blue)), "webp", 4, 3,
			[]uint8{220, 10, 30, 5, 40, 250, 220, 10, 30, 5, 40, 250, 5, 40, 250, 220, 10, 30, 5, 40, 250, 220, 10, 30, 220, 10, 30, 5, 40, 250, 220, 10, 30, 5, 40, 250}},
		{"webp lossy", vp8Bytes(16, 16, nil), "webp", 16, 16, nil},
		{"webp lossy with alpha", vp8Bytes(20, 12, func(x, y int) uint8 { return uint8(x * 10) }), "webp", 20, 12, nil},
		{"jpeg", jpegBytes(t, 40, 30, 1), "jpeg", 40, 30, nil},
	} {
		img, format, err := decodeRGB(tc.data)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if format != tc.format || img.w != tc.w || img.h != tc.h {
			t.Errorf("%s: %s %dx%d, want %s %dx%d", tc.name, format, img.w, img.h, tc.format, tc.w, tc.h)
		}
		if tc.want != nil && string(img.pix) != string(tc.want) {
			t.Errorf("%s: pixels %v, want %v", tc.name, img.pix, tc.want)
		}
		if tc.format == "webp" && tc.want == nil { // the hand-made lossy frames are near-uniform grey
			for i, v := range img.pix {
				if v < 124 || v > 132 {
					t.Errorf("%s: byte %d is %d, want grey about 128", tc.name, i, v)
					break
				}
			}
		}
	}
	// The JPEG round trip stays close to the source picture.
	img, _, _ := decodeRGB(jpegBytes(t, 40, 30, 1))
	src := testImage(40, 30, 1)
	var diff, n float64
	for i := 0; i < 40*30; i++ {
		for c := 0; c < 3; c++ {
			d := float64(img.pix[3*i+c]) - float64(src.Pix[4*i+c])
			diff += d * d
			n++
		}
	}
	if diff/n > 25 {
		t.Errorf("jpeg round trip mean squared error %.1f, want <= 25", diff/n)
	}
}

func TestDecodeRejectsBadImages(t *testing.T) {
	good := jpegBytes(t, 40, 30, 1)
	for name, data := range map[string][]byte{
		"empty":          nil,
		"text":           []byte("not an image at all"),
		"truncated jpeg": good[:len(good)/3],
		"corrupt png":    append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 40)...),
		"corrupt webp":   riff(chunk("VP8L", []byte{0x2f, 1, 2})),
	} {
		if _, _, err := decodeRGB(data); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}
