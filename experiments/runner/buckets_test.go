package runner

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/internal/golden"
)

// writeMixedAspectFolder writes an image folder of n images, 1:1 at indices 1, 4 and 6 and 2:1 at
// the others, with captions.
func writeMixedAspectFolder(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		w, h := 100, 50
		if i == 1 || i == 4 || i == 6 {
			w, h = 60, 60
		}
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.SetNRGBA(x, y, color.NRGBA{uint8(3 * x), uint8(4 * y), uint8(40 * i), 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("img%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("img%02d.txt", i)), []byte(fmt.Sprintf("picture %d", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBucketedRunResumes distills on batches of two shapes (96x48 and 64x64 buckets): the step runs
// on both, and a killed and resumed run repeats the uninterrupted run's losses, so the checkpoint's
// data position (bucket queues included) and the per-bucket compiled steps came back. In stream
// order (no shuffling) the step-2 checkpoint comes with the 2:1 queue holding image 3: steps 1-3
// are 2:1 (0, 2), 1:1 (1, 4), 2:1 (3, 5).
func TestBucketedRunResumes(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "images")
	writeMixedAspectFolder(t, images, 7)
	checkResumeMatches(t, root, filepath.Join(root, "killed"), func(s *spec.Spec) {
		s.Data.Generate, s.Data.Sources = 0, []string{images}
		s.Data.Buckets = []string{"64x64", "96x48"}
		s.Data.RandomFlip, s.Data.ShuffleBuffer = true, 0
	})
}

// A bucket the model cannot take is refused before training, naming the key.
func TestBucketSidesMustFitTheModel(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "images")
	writeMixedAspectFolder(t, images, 2)
	s := tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "out"))
	s.Data.Generate, s.Data.Sources = 0, []string{images}
	s.Data.Buckets = []string{"64x64", "96x40"} // 40: a multiple of the VAE's 8, not of 8 × the UNet's 2
	_, err := Run(t.Context(), s, Options{Log: io.Discard, NoProgress: true})
	if err == nil || !strings.Contains(err.Error(), "data.buckets: training size 96x40 is not a multiple of 16") {
		t.Errorf("Run with a 96x40 bucket: %v, want a data.buckets error", err)
	}
}

// TestSDXLBucketedRun: the SDXL step takes batches of two bucket shapes, with time_ids from each
// sample's crop and bucket.
func TestSDXLBucketedRun(t *testing.T) {
	dir := filepath.Join(golden.Dir(), "tiny-sdxl")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("fixture pipeline %s not found (set %s): %v", dir, golden.EnvDir, err)
	}
	root := t.TempDir()
	images := filepath.Join(root, "images")
	writeMixedAspectFolder(t, images, 7)
	s := tinySpec(t, dir, filepath.Join(root, "out"))
	s.Model.InitTiny = false
	s.Data.Generate, s.Data.Sources, s.Data.ShuffleBuffer = 0, []string{images}, 0
	s.Data.Buckets = []string{"64x64", "96x48"}
	s.Optim.MaxTrainSteps = 3 // 2:1, 1:1, 2:1
	res, err := Run(t.Context(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Losses) != 3 {
		t.Errorf("%d steps, want 3", len(res.Losses))
	}
	t.Logf("losses %v", res.Losses)
}
