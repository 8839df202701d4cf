package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitModelThenSample: the commands the README shows write a tiny
// pipeline and sample a 64×64 PNG from it; several prompts give a grid and
// numbered files.
func TestInitModelThenSample(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny")
	if err := runInitModel([]string{"-out", model, "-seed", "3"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cat.png")
	if err := runSample([]string{"-model", model, "-prompt", "a cat", "-steps", "2", "-out", out}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 64 {
		t.Errorf("image %v, want 64x64", b)
	}
	grid := filepath.Join(dir, "grid.png")
	if err := runSample([]string{"-model", model, "-prompt", "a cat", "-prompt", "a dog", "-steps", "1",
		"-image", out, "-strength", "0.5", "-out", grid}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"grid.png", "grid-0.png", "grid-1.png"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-model", model}, "-prompt is required"},
		{[]string{"-prompt", "x"}, "-model is required"},
		{[]string{"-model", model, "-prompt", "x", "-out", "x.jpg"}, "must end in .png"},
		{[]string{"-model", model, "-prompt", "x", "-image", out, "-strength", "0"}, "-strength"},
		{[]string{"-model", model, "-prompt", "x", "-width", "64000", "-height", "64000"}, "64000×64000 is too large for this model (native 64×64): at most 4× its area (e.g. 128×128)"},
		{[]string{"-model", model, "-prompt", "x", "-width", "100"}, "multiples of 8"},
		{[]string{"-model", model, "-prompt", "x", "-width", "72"}, "multiples of 16"},
		{[]string{"-model", model, "-prompt", "x", "-guidance", "-1"}, "-guidance -1"},
		{[]string{"-model", model, "-prompt", "x", "-steps", "100"}, "use at most 50 steps"},
	} {
		if err := runSample(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sample %q: got %v, want an error with %q", c.args, err, c.want)
		}
	}
	if err := runInitModel([]string{"-arch", "huge", "-out", dir}); err == nil || !strings.Contains(err.Error(), "choices: fashion, tiny") {
		t.Errorf("unknown -arch: got %v", err)
	}
}
