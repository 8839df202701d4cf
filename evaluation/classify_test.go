package evaluation

import (
	"image"
	"image/color"
	"testing"

	"github.com/golcm/golcm/models/classifier"
)

// TestClassifierInputAveragesToGray: an RGB image becomes one gray plane in
// [-1, 1], resized to the classifier's side when it differs; a
// three-channel classifier gets the R, G and B planes.
func TestClassifierInputAveragesToGray(t *testing.T) {
	c := &classifier.Config{InChannels: 1, ImageSize: 8}
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range 64 {
		img.Set(i%8, i/8, color.RGBA{R: 255, G: 0, B: 51, A: 255})
	}
	x, err := classifierInput(c, []*image.RGBA{img, image.NewRGBA(image.Rect(0, 0, 16, 16))})
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != 2*64 {
		t.Fatalf("%d values, want 128", len(x))
	}
	want := (1 + -1 + (2*51.0/255 - 1)) / 3
	if d := float64(x[0]) - want; d > 1e-6 || d < -1e-6 {
		t.Errorf("gray value %v, want %v", x[0], want)
	}
	if x[64] != -1 {
		t.Errorf("resized transparent black image: %v, want -1", x[64])
	}
	c.InChannels = 3
	rgb, err := classifierInput(c, []*image.RGBA{img})
	if err != nil {
		t.Fatal(err)
	}
	if len(rgb) != 3*64 || rgb[0] != 1 || rgb[64] != -1 || rgb[128] != 2*float32(51)/255-1 {
		t.Errorf("RGB planes start %v, %v, %v (%d values), want 1, -1, %v", rgb[0], rgb[64], rgb[128], len(rgb), 2*float32(51)/255-1)
	}
	c.InChannels = 2
	if _, err := classifierInput(c, []*image.RGBA{img}); err == nil {
		t.Error("a two-channel classifier: no error")
	}
}
