package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
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

// randomClassifierAndRealSet saves a random two-class classifier of 64×64
// gray images into root/clf and writes 12 random real images with labels:
// the classifier folder and the images' IDX file.
func randomClassifierAndRealSet(t *testing.T, root string) (clfDir, realImages string) {
	t.Helper()
	clf, err := classifier.New(&classifier.Config{InChannels: 1, ImageSize: 64, Channels: []int{4, 8}, FeatureDim: 6,
		Labels: []string{"circle", "square"}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	clfDir = filepath.Join(root, "clf")
	if err := clf.Save(clfDir); err != nil {
		t.Fatal(err)
	}
	realImages = filepath.Join(root, "real-images-idx3-ubyte")
	writeIDXPair(t, realImages, filepath.Join(root, "real-labels-idx1-ubyte"), 12)
	return clfDir, realImages
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
	clfDir, realImages := randomClassifierAndRealSet(t, root)

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
	err := runEval([]string{"-f", file, "-teacher", teacher, "-student", student, "-lora", filepath.Join(loraDir, "pytorch_lora_weights.safetensors"),
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
		d := m.Config.FeatureDim
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

// TestEvalEveryLogsTheEvalCommandsMetrics distills the tiny teacher with
// run.eval_every: metrics.jsonl gets an evaluation line at every second
// step and after the last, whose latent RMSE equals a recomputation from
// the samples it saved, and whose last values are what the eval command
// measures on the exported LCM with the same settings.
func TestEvalEveryLogsTheEvalCommandsMetrics(t *testing.T) {
	root := t.TempDir()
	teacher, out := filepath.Join(root, "teacher"), filepath.Join(root, "lcm")
	if err := runInitModel([]string{"-out", teacher, "-seed", "3"}); err != nil {
		t.Fatal(err)
	}
	clfDir, realImages := randomClassifierAndRealSet(t, root)
	s, err := spec.Load("", []string{
		"model.path=" + teacher, "data.generate=4", "data.resolution=64", "data.batch_size=2", "data.workers=1",
		"optim.max_train_steps=3", "optim.lr=1e-3", "run.output_dir=" + out, "run.checkpoint_every=0",
		"run.validation_every=0", "run.log_every=1", "run.seed=5", "run.eval_every=2",
		"eval.reference_steps=8", "eval.student_steps=[1, 2]", "eval.student_guidance=3", "eval.samples_per_prompt=2",
		`eval.prompts=["a red circle", "a blue square"]`, "eval.batch_size=3", "eval.seed=11",
		"eval.classifier=" + clfDir, "eval.real_images=" + realImages,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := runner.Run(context.Background(), s, runner.Options{Log: io.Discard, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, runner.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	const rmse1 = "eval/student/lcm/1/latent_rmse"
	logged := map[int]map[string]float64{} // the evaluation lines by step
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var m map[string]float64
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("metrics.jsonl line %s: %v", line, err)
		}
		if _, ok := m[rmse1]; ok {
			logged[int(m["step"])] = m
		}
	}
	if len(logged) != 2 || logged[2] == nil || logged[3] == nil {
		t.Fatalf("evaluation lines at steps %v, want 2 and 3 (every 2, and the last)", slices.Sorted(maps.Keys(logged)))
	}
	if logged[2][rmse1] == logged[3][rmse1] {
		t.Errorf("step 2 and step 3 log the same RMSE %v: the evaluation does not follow training", logged[2][rmse1])
	}
	if res.Metrics[rmse1] != logged[3][rmse1] {
		t.Errorf("Result.Metrics[%s] = %v, logged %v", rmse1, res.Metrics[rmse1], logged[3][rmse1])
	}

	// The step-2 RMSE, recomputed from the samples that evaluation saved.
	const n = 4
	samples := func(step int, name string) []float32 {
		w, err := nn.ReadWeights(filepath.Join(out, "eval", fmt.Sprintf("step-%08d", step), evaluation.SamplesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		x, dims, err := w.Float32("latents")
		if err != nil || dims[0] != n {
			t.Fatalf("%s: latents %v (%v), want %d samples", name, dims, err, n)
		}
		return x
	}
	ref := samples(2, "teacher-ddim-8.safetensors")
	for _, steps := range []int{1, 2} {
		want := meanDistance(ref, samples(2, fmt.Sprintf("student-lcm-%d.safetensors", steps)), n, math.Sqrt)
		key := fmt.Sprintf("eval/student/lcm/%d/latent_rmse", steps)
		if got := logged[2][key]; math.Abs(got-want) > 1e-9*math.Max(1, want) || !(want > 0) {
			t.Errorf("step 2: %s = %v, recomputed from its samples %v", key, got, want)
		}
	}

	// The eval command on the exported LCM, with the same settings, measures
	// what the last evaluation logged.
	evalOut := filepath.Join(root, "eval")
	err = runEval([]string{"-teacher", teacher, "-student", out, "-teacher-steps", "", "-reference-steps", "8",
		"-student-steps", "1,2", "-student-guidance", "3", "-samples", "2", "-prompt", "a red circle", "-prompt", "a blue square",
		"-batch", "3", "-seed", "11", "-classifier", clfDir, "-real-images", realImages, "-out", evalOut})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := evaluation.ReadReport(filepath.Join(evalOut, evaluation.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, row := range rep.Rows {
		for measure, v := range map[string]*float64{"latent_rmse": &row.LatentRMSE, "pixel_psnr_db": row.PixelPSNR,
			"frechet_distance": row.Frechet, "prompt_accuracy": row.PromptAccuracy} {
			model := map[string]string{"lcm": "student", "teacher": "teacher"}[row.Model]
			key := fmt.Sprintf("eval/%s/%s/%d/%s", model, row.Sampler, row.Steps, measure)
			got, ok := logged[3][key]
			if row.Reference && (measure == "latent_rmse" || measure == "pixel_psnr_db") {
				if ok {
					t.Errorf("%s logged (%v): the reference's distance to itself", key, got)
				}
				continue
			}
			if !ok || v == nil {
				t.Errorf("%s: logged %v (%v), the eval command %v", key, got, ok, v)
				continue
			}
			if math.Abs(got-*v) > 1e-5*math.Max(1, math.Abs(*v)) {
				t.Errorf("%s: logged %v at the last step, the eval command on the export %v", key, got, *v)
			}
			compared++
		}
	}
	if compared != 10 { // the reference's 2 measures and the student's 4 at 2 step counts
		t.Errorf("compared %d logged values with the eval command's, want 10", compared)
	}
}
