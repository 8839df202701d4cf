package main

import (
	"bytes"
	"context"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/evaluation"
	"github.com/golcm/golcm/experiments/runner"
	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/metrics"
	"github.com/golcm/golcm/models/classifier"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/sampling"
)

// distillTiny distills the tiny teacher for a few steps into out, fully
// or as a LoRA.
func distillTiny(t *testing.T, teacher, out, mode string) {
	t.Helper()
	s, err := spec.Load("", []string{
		"model.path=" + teacher, "distill.mode=\"" + mode + "\"",
		"data.generate=4", "data.resolution=64", "data.batch_size=2", "data.workers=1",
		"optim.max_train_steps=2", "optim.lr=1e-3", "run.output_dir=" + out,
		"run.checkpoint_every=0", "run.validation_every=0", "run.seed=5",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runner.Run(context.Background(), s, runner.Options{Log: io.Discard, NoProgress: true}); err != nil {
		t.Fatal(err)
	}
}

// writeIDXPair writes n random 48×48 grayscale images and labels 0/1 as
// IDX files.
func writeIDXPair(t *testing.T, images, labels string, n int) {
	rng := rand.New(rand.NewPCG(9, 9))
	img := []byte{0, 0, 8, 3, 0, 0, 0, byte(n), 0, 0, 0, 48, 0, 0, 0, 48}
	lab := []byte{0, 0, 8, 1, 0, 0, 0, byte(n)}
	for i := range n {
		for range 48 * 48 {
			img = append(img, byte(rng.IntN(256)))
		}
		lab = append(lab, byte(i%2))
	}
	if err := os.WriteFile(images, img, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(labels, lab, 0o644); err != nil {
		t.Fatal(err)
	}
}

// meanDistance is the mean over n samples of f on each sample's slice,
// computed here independently of package metrics.
func meanDistance(a, b []float32, n int, f func(mse float64) float64) float64 {
	per := len(a) / n
	var sum float64
	for k := range n {
		var sse float64
		for i := k * per; i < (k+1)*per; i++ {
			d := float64(a[i]) - float64(b[i])
			sse += d * d
		}
		sum += f(sse / float64(per))
	}
	return sum / float64(n)
}

// TestEvalComparesStudentsWithTeacher runs the eval command on golcm's
// tiny random teacher, a full LCM and an LCM-LoRA distilled from it for
// two steps, and a random classifier: the reference row is at distance 0
// from itself, every row's RMSE and PSNR equal a recomputation from its
// saved samples, the reference samples are what the sampler gives one
// sample alone from the initial noise (seed, k), eval.json round-trips and
// the grid has a row per (model, sampler, steps).
func TestEvalComparesStudentsWithTeacher(t *testing.T) {
	root := t.TempDir()
	teacher, student, loraDir := filepath.Join(root, "teacher"), filepath.Join(root, "lcm"), filepath.Join(root, "lora")
	if err := runInitModel([]string{"-out", teacher, "-seed", "3"}); err != nil {
		t.Fatal(err)
	}
	distillTiny(t, teacher, student, "full")
	distillTiny(t, teacher, loraDir, "lora")
	clfCfg := &classifier.Config{InChannels: 1, ImageSize: 64, Channels: []int{4, 8}, FeatureDim: 6, Labels: []string{"circle", "square"}}
	clf, err := classifier.New(clfCfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	clfDir := filepath.Join(root, "clf")
	if err := clf.Save(clfDir); err != nil {
		t.Fatal(err)
	}
	realImages := filepath.Join(root, "real-images-idx3-ubyte")
	writeIDXPair(t, realImages, filepath.Join(root, "real-labels-idx1-ubyte"), 12)

	// Settings from an [eval] section, and flags (-samples overrides the
	// file's samples_per_prompt). The teacher's 8 steps are the reference
	// row, not a row again.
	out := filepath.Join(root, "eval")
	file := filepath.Join(root, "eval.toml")
	toml := "[eval]\nteacher_steps = [1, 4, 8]\nreference_steps = 8\nstudent_steps = [1, 2]\nsamples_per_prompt = 5\n" +
		"prompts = [\"a red circle\", \"a blue square\"]\nbatch_size = 3\nseed = 11\n"
	if err := os.WriteFile(file, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	err = runEval([]string{"-f", file, "-teacher", teacher, "-student", student, "-lora", filepath.Join(loraDir, "pytorch_lora_weights.safetensors"),
		"-lora-guidance", "1.5", "-samples", "2", "-classifier", clfDir, "-real-images", realImages, "-out", out})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evaluation.ReadReport(filepath.Join(out, evaluation.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"teacher ddim 8 steps (reference)", "teacher ddim 1 steps", "teacher ddim 4 steps",
		"lcm lcm 1 steps", "lcm lcm 2 steps", "lcm-lora lcm 1 steps", "lcm-lora lcm 2 steps"}
	if len(rep.Rows) != len(names) {
		t.Fatalf("%d rows, want %d: %+v", len(rep.Rows), len(names), rep.Rows)
	}
	const n = 4
	read := func(file string) (latents, pixels []float32) {
		w, err := nn.ReadWeights(filepath.Join(out, file))
		if err != nil {
			t.Fatal(err)
		}
		latents, dims, _ := w.Float32("latents")
		pixels, pdims, _ := w.Float32("pixels")
		if dims[0] != n || pdims[0] != n || pdims[1] != 3 || pdims[2] != 64 || pdims[3] != 64 {
			t.Fatalf("%s: latents %v, pixels %v; want %d samples of 64×64", file, dims, pdims, n)
		}
		return latents, pixels
	}
	refLatents, refPixels := read(rep.Rows[0].Samples)
	for i, row := range rep.Rows {
		if row.Name() != names[i] {
			t.Errorf("row %d is %q, want %q", i, row.Name(), names[i])
		}
		latents, pixels := read(row.Samples)
		rmse := meanDistance(refLatents, latents, n, math.Sqrt)
		psnr := meanDistance(refPixels, pixels, n, func(mse float64) float64 { return 10 * math.Log10(1/mse) })
		if math.Abs(row.LatentRMSE-rmse) > 1e-9*math.Max(1, rmse) {
			t.Errorf("%s: latent RMSE %v, recomputed from the samples %v", row.Name(), row.LatentRMSE, rmse)
		}
		if i == 0 {
			if row.LatentRMSE != 0 || row.PixelPSNR != nil {
				t.Errorf("reference row: RMSE %v and PSNR %v to itself, want 0 and null (infinite)", row.LatentRMSE, row.PixelPSNR)
			}
		} else if row.PixelPSNR == nil || math.Abs(*row.PixelPSNR-psnr) > 1e-9*math.Abs(psnr) || !(rmse > 0) {
			t.Errorf("%s: PSNR %v, recomputed %v; RMSE %v, want > 0", row.Name(), row.PixelPSNR, psnr, rmse)
		}
		if row.Frechet == nil || !(*row.Frechet >= -1e-9) || row.PromptAccuracy == nil ||
			math.Mod(*row.PromptAccuracy*n, 1) != 0 || !(row.SecondsPerImage > 0) {
			t.Errorf("%s: Fréchet %v, prompt accuracy %v (want k/%d), %v s/image", row.Name(), row.Frechet, row.PromptAccuracy, n, row.SecondsPerImage)
		}
		t.Log(row.Name(), row.LatentRMSE, optionalValue(row.PixelPSNR), optionalValue(row.Frechet), optionalValue(row.PromptAccuracy))
	}
	if rep.Real == nil || rep.Real.Images != 12 || rep.Real.HalvesFrechet == nil || rep.Images != n {
		t.Errorf("report: real set %+v, %d images per row; want 12 real images and %d per row", rep.Real, rep.Images, n)
	}
	// The floor for rows of n images: every 12/n-th real image's features
	// against all 12, recomputed here from the classifier's own output.
	if rep.Real != nil {
		m, err := classifier.Load(clfDir)
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := backend.Default("")
		if err != nil {
			t.Fatal(err)
		}
		r, err := classifier.NewRunner(b, m, nn.Options{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		real, err := classifier.ReadIDX(realImages, filepath.Join(root, "real-labels-idx1-ubyte"), 64, 0)
		if err != nil {
			t.Fatal(err)
		}
		feats, err := r.Predict(real.Images)
		r.Finalize()
		if err != nil {
			t.Fatal(err)
		}
		d := clfCfg.FeatureDim
		var subset []float32
		for k := 0; k < 12; k += 12 / n {
			subset = append(subset, feats.Features[k*d:(k+1)*d]...)
		}
		want, err := metrics.FrechetDistance(subset, feats.Features, d)
		if err != nil {
			t.Fatal(err)
		}
		if got := rep.Real.RowFloorFrechet; got == nil || rep.Real.RowFloorImages != n || math.Abs(*got-want) > 1e-9*math.Max(1, want) {
			t.Errorf("row floor %v over %d images, recomputed %v over %d", optionalValue(got), rep.Real.RowFloorImages, want, n)
		}
	}

	// Sample 3 sits in the second batch, padded by wrapping to samples 0
	// and 1: alone, from its own noise, the teacher gives the same latents.
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(teacher, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sampling.NewSampler(b, p, nil, nil, nn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Finalize()
	rng := rand.New(rand.NewPCG(11, 3))
	noise := make([]float32, 4*8*8)
	for i := range noise {
		noise[i] = float32(rng.NormFloat64())
	}
	res, err := s.Sample(sampling.SampleRequest{Prompts: []string{"a blue square"}, Steps: 8, Guidance: 7.5,
		InitNoise: noise, Scheduler: "ddim"})
	if err != nil {
		t.Fatal(err)
	}
	alone := res.Latents[len(res.Latents)-1]
	if d := meanDistance(refLatents[3*256:], alone, 1, math.Sqrt); d > 1e-4 {
		t.Errorf("sample 3 of the reference row differs from the sampler's alone by RMSE %v", d)
	}

	// eval.json round-trips: read and written again, the same bytes.
	again := filepath.Join(root, "again.json")
	if err := evaluation.WriteReport(again, rep); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(out, evaluation.ReportFile))
	bb, _ := os.ReadFile(again)
	if !bytes.Equal(a, bb) {
		t.Errorf("eval.json does not round-trip:\n%s\nbecame\n%s", a, bb)
	}
	f, err := os.Open(filepath.Join(out, evaluation.GridFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	grid, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 64-pixel samples are drawn at 128: 2 columns, 7 rows under labels.
	if g := grid.Bounds(); g.Dx() != 2*(128+4)+4 || g.Dy() < 7*(128+13) {
		t.Errorf("grid %v, want 2 columns of 128-pixel cells and 7 rows", g)
	}
}

func optionalValue(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
