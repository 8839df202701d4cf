package classifier

import (
	"bytes"
	"compress/gzip"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
)

// tinyConfig classifies 8×8 grayscale images into 3 classes.
func tinyConfig() *Config {
	return &Config{InChannels: 1, ImageSize: 8, Channels: []int{4, 8}, FeatureDim: 16, Labels: []string{"left", "right", "top"}}
}

// bars is a separable set: class 0 lights the left half of the image, 1
// the right half, 2 the top half, under Gaussian noise of std 0.3.
func bars(n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &Dataset{Channels: 1, Size: 8, Images: make([]float32, n*64), Labels: make([]int, n)}
	for i := range n {
		c := rng.IntN(3)
		d.Labels[i] = c
		for y := range 8 {
			for x := range 8 {
				lit := (c == 0 && x < 4) || (c == 1 && x >= 4) || (c == 2 && y < 4)
				v := -0.5
				if lit {
					v = 0.5
				}
				d.Images[i*64+y*8+x] = float32(v + 0.3*rng.NormFloat64())
			}
		}
	}
	return d
}

// TestClassifierLearnsSeparableSet: 150 steps on the bars reach at least
// 95% on fresh bars (chance is 33%), and the saved folder loads back with
// identical logits and features.
func TestClassifierLearnsSeparableSet(t *testing.T) {
	b, name, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(tinyConfig(), 3)
	if err != nil {
		t.Fatal(err)
	}
	test := bars(300, 2)
	r, err := NewRunner(b, m, nn.ForBackend(name.Name()), 64)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Finalize()
	before, err := r.Accuracy(test)
	if err != nil {
		t.Fatal(err)
	}
	o := TrainOptions{Steps: 150, BatchSize: 32, LR: 1e-2, Seed: 1, NN: nn.ForBackend(name.Name())}
	loss, err := Train(context.Background(), b, m, bars(600, 1), o)
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.Accuracy(test)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accuracy %.3f before training, %.3f after (final loss %.4f)", before, after, loss)
	if after < 0.95 || loss > 0.2 {
		t.Errorf("after training: accuracy %.3f, loss %.4f; want at least 0.95 and at most 0.2", after, loss)
	}

	dir := filepath.Join(t.TempDir(), "clf")
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := NewRunner(b, back, nn.ForBackend(name.Name()), 64)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Finalize()
	want, err := r.Predict(test.Images)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r2.Predict(test.Images)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Logits {
		if got.Logits[i] != want.Logits[i] {
			t.Fatalf("logit %d: %v after reload, %v before", i, got.Logits[i], want.Logits[i])
		}
	}
	for i := range want.Features {
		if got.Features[i] != want.Features[i] {
			t.Fatalf("feature %d: %v after reload, %v before", i, got.Features[i], want.Features[i])
		}
	}
	if len(got.Logits) != 300*3 || len(got.Features) != 300*16 {
		t.Errorf("%d logits and %d features for 300 images, want 900 and 4800", len(got.Logits), len(got.Features))
	}
}

// TestSaveReplacesFolderWhole: saving over an existing folder leaves the
// new model and no temporary folders; a broken config is refused by key.
func TestSaveReplacesFolderWhole(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "clf")
	for seed := range uint64(2) {
		m, err := New(tinyConfig(), seed)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Save(dir); err != nil {
			t.Fatal(err)
		}
		back, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := m.Weights.Float32("head.weight")
		got, _, _ := back.Weights.Float32("head.weight")
		if got[0] != want[0] {
			t.Fatalf("seed %d: head.weight[0] %v after reload, saved %v", seed, got[0], want[0])
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("%d entries beside the folder, want only it: %v", len(entries), entries)
	}
	cfg := filepath.Join(dir, ConfigFile)
	data, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, bytes.Replace(data, []byte(`"image_size": 8`), []byte(`"image_size": 6`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "image_size") || !strings.Contains(err.Error(), cfg) {
		t.Errorf("image_size 6 with two stride-2 convolutions: %v, want an error naming the file and key", err)
	}
}

// writeIDX writes bytes in IDX layout, gzip-compressed when zip is set.
func writeIDX(t *testing.T, path string, zip bool, data []byte, dims ...int) {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		buf.Write([]byte{byte(d >> 24), byte(d >> 16), byte(d >> 8), byte(d)})
	}
	buf.Write(data)
	out := buf.Bytes()
	if zip {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(out)
		w.Close()
		out = z.Bytes()
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReadIDXCentresImages: two 2×2 images padded to 4×4 sit in the middle
// on black (-1), with v/255·2-1 values and their labels.
func TestReadIDXCentresImages(t *testing.T) {
	dir := t.TempDir()
	imgs, labels := filepath.Join(dir, "img.gz"), filepath.Join(dir, "lab")
	writeIDX(t, imgs, true, []byte{255, 0, 51, 102, 0, 0, 0, 255}, 2, 2, 2)
	writeIDX(t, labels, false, []byte{7, 3}, 2)
	d, err := ReadIDX(imgs, labels, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := func(b float32) float32 { return 2*(b/255) - 1 } // float32, as the reader computes it
	want := []float32{
		-1, -1, -1, -1, -1, 1, -1, -1, -1, v(51), v(102), -1, -1, -1, -1, -1,
		-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, -1, -1, -1, -1, -1,
	}
	for i := range want {
		if d.Images[i] != want[i] {
			t.Fatalf("value %d = %v, want %v (all %v)", i, d.Images[i], want[i], d.Images)
		}
	}
	if d.Labels[0] != 7 || d.Labels[1] != 3 || d.Len() != 2 {
		t.Errorf("labels %v, want [7 3]", d.Labels)
	}
	if d, _ := ReadIDX(imgs, labels, 4, 1); d.Len() != 1 {
		t.Errorf("limit 1: %d images", d.Len())
	}
	if _, err := ReadIDX(labels, labels, 4, 0); err == nil {
		t.Error("labels given as images: no error")
	}
}
