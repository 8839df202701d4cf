package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golcm/golcm/models/classifier"
)

// TestClassifierCommandSaves: the classifier command trains on IDX files
// named by -train (labels found beside them), reports, and saves a folder
// that loads with the flags' architecture; a bad -channels is refused.
func TestClassifierCommandSaves(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, split := range []string{"train", "t10k"} {
		img := []byte{0, 0, 8, 3, 0, 0, 0, 40, 0, 0, 0, 6, 0, 0, 0, 6}
		lab := []byte{0, 0, 8, 1, 0, 0, 0, 40}
		for i := range 40 {
			for range 36 {
				img = append(img, byte(rng.IntN(256)))
			}
			lab = append(lab, byte(i%3))
		}
		os.WriteFile(filepath.Join(dir, split+"-images-idx3-ubyte"), img, 0o644)
		os.WriteFile(filepath.Join(dir, split+"-labels-idx1-ubyte"), lab, 0o644)
	}
	out := filepath.Join(dir, "clf")
	args := []string{"-train", filepath.Join(dir, "train-images-idx3-ubyte"), "-test", filepath.Join(dir, "t10k-images-idx3-ubyte"),
		"-out", out, "-steps", "3", "-batch", "8", "-size", "8", "-channels", "4,8", "-features", "5", "-labels", "a,b,c"}
	if err := runClassifier(args); err != nil {
		t.Fatal(err)
	}
	m, err := classifier.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Config; c.ImageSize != 8 || len(c.Channels) != 2 || c.Channels[1] != 8 || c.FeatureDim != 5 || c.NumClasses() != 3 {
		t.Errorf("saved config %+v, want the flags' architecture", c)
	}
	if err := runClassifier(append(args, "-channels", "4,x")); err == nil || !strings.Contains(err.Error(), "-channels") {
		t.Errorf("-channels 4,x: %v", err)
	}
	if err := runClassifier([]string{"-steps", "1"}); err == nil || !strings.Contains(err.Error(), "-out is required") {
		t.Errorf("no -out: %v", err)
	}
}
