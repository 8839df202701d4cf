package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/latentcache"
	"github.com/golcm/golcm/models/pipeline"
)

// fixturePipeline is a fixture pipeline folder, or skips the test.
func fixturePipeline(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(golden.Dir(), name)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("fixture pipeline %s not found (set %s): %v", dir, golden.EnvDir, err)
	}
	return dir
}

// writeCaptionedImages writes 8 synthetic images of 64–96 pixels a side
// (odd margins around a 64 centre crop, so a mirrored crop is not the crop
// mirrored) where every other image has two captions, one drawn per epoch.
func writeCaptionedImages(t *testing.T, dir string) {
	t.Helper()
	if err := datasets.WriteSyntheticImages(dir, 8, 64, 3); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, "metadata.jsonl")
	data, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			m["text"] = []string{m["text"].(string), fmt.Sprintf("picture number %d", i)}
		}
		js, _ := json.Marshal(m)
		out = append(out, string(js))
	}
	if err := os.WriteFile(meta, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// cacheSpec is tinySpec on a fixture pipeline and the images in dir, with
// centre crops and random flips (the cache holds both).
func cacheSpec(t *testing.T, teacher, images, out string) spec.Spec {
	t.Helper()
	s := tinySpec(t, teacher, out)
	s.Model.InitTiny = false
	s.Data.Generate, s.Data.Sources = 0, []string{images}
	s.Data.CenterCrop, s.Data.RandomFlip = true, true
	return s
}

// cachedFixture writes captioned images into a temporary root and their
// cache (cacheSpec on the tiny-sd-teacher fixture) beside them.
func cachedFixture(t *testing.T) (root, images, teacher, cache string) {
	t.Helper()
	root = t.TempDir()
	images = filepath.Join(root, "images")
	writeCaptionedImages(t, images)
	teacher = fixturePipeline(t, "tiny-sd-teacher")
	cache = filepath.Join(root, "cache")
	buildCache(t, cacheSpec(t, teacher, images, filepath.Join(root, "build")), cache)
	return root, images, teacher, cache
}

// buildCache writes the cache of s into dir.
func buildCache(t *testing.T, s spec.Spec, dir string) *CacheReport {
	t.Helper()
	s.Data.Cache = dir
	rep, err := BuildCache(context.Background(), s, CacheOptions{Options: Options{Log: io.Discard, NoProgress: true}, PerShard: 3})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// lossesMatch compares the losses of a run from images and one from the
// cache. The cache holds the encoders' own float32 outputs, so the step
// inputs differ only by rounding: the host computes mean + exp(logvar/2)·ε
// and the scaling where the graph fuses them, and the encoders ran on
// batches of other sizes; measured ≤ 3e-7 relative (2–3 ulps), checked at
// inputTolerance below. Six AdamW steps amplify that (an element whose
// gradient is ~0 moves by ±lr with its sign): the losses then agree to
// ~3e-5 relative (measured: equal at step 1, 2.6e-5 at step 6). 1e-4 relative
// (+1e-7 absolute) holds that with a margin, while a wrong flip moves the
// losses by ~3e-3 and a wrong caption or latent by 1e-2 to 5e-1.
func lossesMatch(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if d := math.Abs(float64(a[i] - b[i])); d > 1e-4*math.Abs(float64(a[i]))+1e-7 {
			return i, false
		}
	}
	return 0, true
}

// TestCacheRunMatchesImageRun: on the fixture SD and SDXL teachers, with
// random flips, shuffling and two captions on half the samples over two
// epochs, a run from the cache repeats the run from images step for step,
// without loading the VAE or the text encoders; and the cache holds a
// mirrored crop that is not the unflipped one mirrored.
func TestCacheRunMatchesImageRun(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "images")
	writeCaptionedImages(t, images)
	for _, name := range []string{"tiny-sd-teacher", "tiny-sdxl"} {
		teacher := fixturePipeline(t, name)
		s := cacheSpec(t, teacher, images, filepath.Join(root, name, "images"))
		fromImages, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
		if err != nil {
			t.Fatalf("%s from images: %v", name, err)
		}
		dir := filepath.Join(root, name, "cache")
		rep := buildCache(t, s, dir)
		if rep.Samples != 8 || rep.EncodedImages != 16 || rep.EncodedCaptions != 12 {
			t.Errorf("%s: cache report %+v, want 8 samples, 16 images (both flips), 12 captions", name, rep)
		}
		// The step inputs of the first batches, drawn by a run from images
		// and by a run from the cache (the same random draws).
		s.Run.OutputDir = filepath.Join(root, name, "inputs")
		img := startRun(t, s)
		s.Data.Cache, s.Run.OutputDir = dir, filepath.Join(root, name, "cached")
		r := startRun(t, s)
		if r.pipe.EncodersLoaded() || r.cond != nil || r.vaeRunner != nil {
			t.Errorf("%s: a run from the cache loaded the encoders (%v) or made their programs", name, r.pipe.EncodersLoaded())
		}
		worst := map[string]float64{}
		for step := 1; step <= 6; step++ {
			a, err := img.stepBatch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.stepBatch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for what, pair := range map[string][2]*tensors.Tensor{"latents": {a.Latents, b.Latents},
				"prompt_embeds": {a.PromptEmbeds, b.PromptEmbeds}, "uncond": {a.UncondEmbeds, b.UncondEmbeds},
				"noise": {a.Noise, b.Noise}, "text_embeds": {a.TextEmbeds, b.TextEmbeds}, "time_ids": {a.TimeIDs, b.TimeIDs}} {
				if (pair[0] == nil) != (pair[1] == nil) {
					t.Fatalf("%s batch %d: %s present from images %v, from the cache %v", name, step, what, pair[0] != nil, pair[1] != nil)
				}
				if pair[0] == nil {
					continue
				}
				d := maxRelDiff(t, pair[0], pair[1])
				worst[what] = max(worst[what], d)
				if d > inputTolerance {
					t.Errorf("%s batch %d: %s differ by %.3g (relative to their largest element)", name, step, what, d)
				}
			}
		}
		t.Logf("%s: largest relative differences of the step inputs over 6 batches: %v", name, worst)
		img.close()
		r.close()
		// Validation after the last step loads the encoders then.
		s.Run.OutputDir = filepath.Join(root, name, "cached2")
		s.Run.ValidationEvery, s.Run.ValidationPrompts, s.Run.ValidationInferenceSteps = 6, []string{"a cat"}, []int{1}
		fromCache, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
		if err != nil {
			t.Fatalf("%s from the cache: %v", name, err)
		}
		if _, err := os.Stat(validationGrid(s.Run.OutputDir, "student", 6)); err != nil {
			t.Errorf("%s: no validation grid from a run from the cache: %v", name, err)
		}
		s.Run.ValidationEvery = 0
		if i, ok := lossesMatch(fromImages.Losses, fromCache.Losses); !ok {
			t.Errorf("%s: step %d: losses from images %v, from the cache %v", name, i+1, fromImages.Losses, fromCache.Losses)
		}
		t.Logf("%s: from images %v\nfrom the cache %v", name, fromImages.Losses, fromCache.Losses)

		// Without random flips the cache is refused, by name.
		s.Data.RandomFlip, s.Run.OutputDir = false, filepath.Join(root, name, "noflip")
		_, err = Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
		if err == nil || !strings.Contains(err.Error(), "data.random_flip: cache true, this run false") {
			t.Errorf("%s: run without random_flip from a cache with it: %v", name, err)
		}
	}
}

// maxRelDiff is max |a−b| / max |a| over the elements of two host tensors.
func maxRelDiff(t *testing.T, a, b *tensors.Tensor) float64 {
	t.Helper()
	x, y := hostFloats(t, a), hostFloats(t, b)
	if len(x) != len(y) {
		t.Fatalf("%d and %d elements", len(x), len(y))
	}
	var d, m float64
	for i := range x {
		d = max(d, math.Abs(float64(x[i]-y[i])))
		m = max(m, math.Abs(float64(x[i])))
	}
	if m == 0 {
		return d // all zeros (SDXL's unconditional embeddings)
	}
	return d / m
}

// inputTolerance bounds the step inputs' differences between a run from
// images and one from the cache, relative to their largest element: 8 ulps
// of float32 (see lossesMatch).
const inputTolerance = 1e-6

// TestCacheBuildResumesAfterAKill: a cache pass killed part-way keeps its
// finished shards; run again it encodes only the rest, and the cache holds
// what an uninterrupted pass writes, sample for sample.
func TestCacheBuildResumesAfterAKill(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "images")
	writeCaptionedImages(t, images)
	s := cacheSpec(t, fixturePipeline(t, "tiny-sd-teacher"), images, filepath.Join(root, "run"))
	s.Data.VAEEncodeBatchSize = 2 // encode 2 samples at a time
	whole := filepath.Join(root, "whole")
	buildCache(t, s, whole)

	killed := filepath.Join(root, "killed")
	s.Data.Cache = killed
	opts := CacheOptions{Options: Options{Log: io.Discard, NoProgress: true, StopAfter: 4}, PerShard: 3}
	if _, err := BuildCache(context.Background(), s, opts); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("killed pass: %v, want ErrInterrupted", err)
	}
	// The first shard holds "" and samples 1-2; samples 3-4 were queued and are lost.
	opts.StopAfter = 0
	rep, err := BuildCache(context.Background(), s, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.Encoded != 6 || rep.Samples != 8 {
		t.Errorf("resumed pass: %+v, want resumed, 6 samples encoded, 8 in the cache", rep)
	}
	set := func(dir string) *latentcache.Cache {
		c, err := latentcache.Open(dir, mustSettings(t, s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := set(whole), set(killed)
	if !slices.Equal(a.Keys(), b.Keys()) {
		t.Fatalf("keys %q, uninterrupted %q", b.Keys(), a.Keys())
	}
	for _, k := range a.Keys() {
		ea, _ := a.Get(k)
		eb, err := b.Get(k)
		if err != nil || !reflect.DeepEqual(ea, eb) {
			t.Errorf("sample %s differs from the uninterrupted pass's (%v)", k, err)
		}
	}
	// A finished cache with the same settings is left as it is.
	if rep, err := BuildCache(context.Background(), s, opts); err != nil || !rep.AlreadyComplete {
		t.Errorf("BuildCache over a finished cache: %+v, %v", rep, err)
	}
}

// mustSettings are the cache settings of s.
func mustSettings(t *testing.T, s spec.Spec) latentcache.Settings {
	t.Helper()
	p, err := pipeline.LoadWithoutEncoders(s.Model.Path, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cacheSettings(p, s.Data.Config)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestCacheRunResumes: a run from the cache killed after step 3 and resumed
// repeats the uninterrupted run's losses exactly: the data position and the
// cache's reads came back.
func TestCacheRunResumes(t *testing.T) {
	root, images, teacher, cache := cachedFixture(t)
	checkResumeMatches(t, root, filepath.Join(root, "killed"), func(s *spec.Spec) {
		s.Model.Path, s.Model.InitTiny = teacher, false
		s.Data.Generate, s.Data.Sources = 0, []string{images}
		s.Data.CenterCrop, s.Data.RandomFlip, s.Data.Cache = true, true, cache
	})
}

// TestCacheRefusals: a cache made with another VAE is refused naming the
// setting with both hashes, and data.cache with random crops is refused
// naming data.center_crop.
func TestCacheRefusals(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "images")
	writeCaptionedImages(t, images)
	teacher := filepath.Join(root, "teacher")
	if err := os.CopyFS(teacher, os.DirFS(fixturePipeline(t, "tiny-sd-teacher"))); err != nil {
		t.Fatal(err)
	}
	s := cacheSpec(t, teacher, images, filepath.Join(root, "run"))
	cache := filepath.Join(root, "cache")
	buildCache(t, s, cache)
	made := mustSettings(t, s).VAE

	// The same VAE with one weight changed (its last byte).
	weights := filepath.Join(teacher, "vae", "diffusion_pytorch_model.safetensors")
	data, err := os.ReadFile(weights)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(weights, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s.Data.Cache = cache
	_, err = Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	want := fmt.Sprintf("vae: cache %s, this run %s", made, mustSettings(t, s).VAE)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "data.cache") {
		t.Errorf("run with another VAE: %v, want it to name data.cache and say %q", err, want)
	}

	s.Data.CenterCrop = false
	_, err = Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err == nil || !strings.Contains(err.Error(), "data.center_crop = false with data.cache") {
		t.Errorf("data.cache with random crops: %v, want a refusal naming data.center_crop", err)
	}
}

// TestDiffusionCacheRunMatchesImageRun: the diffusion task from the cache,
// with half the captions dropped to "" (whose encoding the cache holds),
// repeats its run from images (tolerance as lossesMatch).
func TestDiffusionCacheRunMatchesImageRun(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "images")
	writeCaptionedImages(t, images)
	s := cacheSpec(t, fixturePipeline(t, "tiny-sd-teacher"), images, filepath.Join(root, "images-run"))
	s.Task, s.Diffusion.ProportionEmptyPrompts, s.Optim.MaxTrainSteps = "diffusion", 0.5, 4
	fromImages, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "cache")
	buildCache(t, s, dir)
	s.Data.Cache, s.Run.OutputDir = dir, filepath.Join(root, "cache-run")
	fromCache, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	if i, ok := lossesMatch(fromImages.Losses, fromCache.Losses); !ok {
		t.Errorf("step %d: losses from images %v, from the cache %v", i+1, fromImages.Losses, fromCache.Losses)
	}
	t.Logf("from images %v\nfrom the cache %v", fromImages.Losses, fromCache.Losses)
}
