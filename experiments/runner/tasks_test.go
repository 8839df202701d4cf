package runner

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/models/vae"
	"github.com/golcm/golcm/sampling"
	"github.com/golcm/golcm/train"
)

// taskSpec is a few-step run of task on golcm's tiny random pipeline
// (written into root/pipeline on first use) and generated 64×64 images.
func taskSpec(t *testing.T, root, out, task string, sets ...string) spec.Spec {
	t.Helper()
	pipe := filepath.Join(root, "pipeline")
	if _, err := pipeline.Load(pipe, "", "", ""); err != nil {
		if err := pipeline.InitTiny(pipe, 5); err != nil {
			t.Fatal(err)
		}
	}
	s, err := spec.Load("", append([]string{
		"task=" + task, "model.path=" + pipe,
		"data.generate=8", "data.resolution=64", "data.batch_size=2", "data.workers=1",
		"optim.max_train_steps=6", "optim.weight_decay=0", "optim.lr=1e-3",
		"run.output_dir=" + out, "run.checkpoint_every=2", "run.validation_every=0", "run.log_every=1",
		"run.seed=11",
	}, sets...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startRun prepares a run of s up to its first step, for tests that look
// at one step's inputs.
func startRun(t *testing.T, s spec.Spec) *run {
	t.Helper()
	r := &run{spec: s, opts: quiet(), log: io.Discard}
	t.Cleanup(r.close)
	if err := r.start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// firstStep runs a task's first step on its own: the batch inputs draws,
// the trained weights before the step, and the step's result.
func firstStep(t *testing.T, tr *train.Trainer, inputs func(context.Context) (map[string]*tensors.Tensor, float64, error),
) (map[string]*tensors.Tensor, *nn.Weights, *train.Result) {
	t.Helper()
	in, lr, err := inputs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	before, err := tr.Trained.Clone()
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.Step(in, lr)
	if err != nil {
		t.Fatal(err)
	}
	return in, before, res
}

func hostFloats(t *testing.T, x *tensors.Tensor) []float32 {
	t.Helper()
	data, _, err := nn.TensorFloat32(x)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// scaledLinearAlphasCumprod is SD's noise schedule in float64, written out
// here independently of lcm.NoiseSchedule: betas = linspace(√0.00085,
// √0.012, 1000)², ac[t] = Π_{i<=t} (1 - beta_i).
func scaledLinearAlphasCumprod() []float64 {
	ac := make([]float64, 1000)
	prod := 1.0
	lo, hi := math.Sqrt(0.00085), math.Sqrt(0.012)
	for i := range ac {
		b := lo + (hi-lo)*float64(i)/999
		prod *= 1 - b*b
		ac[i] = prod
	}
	return ac
}

// TestDiffusionLossMatchesHandComputation: the loss of one runner batch of
// the diffusion task equals train_text_to_image.py's formula computed here
// from that batch's latents, noise and timesteps with the UNet run on its
// own: noisy = √ac·x0 + √(1-ac)·eps, target eps or √ac·eps - √(1-ac)·x0,
// per-sample MSE weighted by min(snr, γ)/snr (eps) or min(snr, γ)/(snr+1)
// (v), batch mean.
func TestDiffusionLossMatchesHandComputation(t *testing.T) {
	root := t.TempDir()
	ac := scaledLinearAlphasCumprod()
	for _, tc := range []struct {
		name       string
		prediction string
		gamma      float64
	}{{"epsilon", "epsilon", 0}, {"epsilon-min-snr", "epsilon", 5}, {"v", "v_prediction", 0}, {"v-min-snr", "v_prediction", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			s := taskSpec(t, root, filepath.Join(root, tc.name), "diffusion",
				"diffusion.prediction_type="+tc.prediction, "diffusion.snr_gamma="+formatG(tc.gamma),
				"data.batch_size=4", "run.seed=3") // seed 3 draws t = 125, where snr > 5
			r := startRun(t, s)
			task := r.task.(*diffusionTask)
			in, before, res := firstStep(t, task.tr, task.inputs)

			x0, eps := hostFloats(t, in["latents"]), hostFloats(t, in["noise"])
			ts, _ := tensors.CopyFlatData[int64](in["timesteps"])
			B := len(ts)
			per := len(x0) / B
			noisy := make([]float32, len(x0))
			target := make([]float32, len(x0))
			weights := make([]float64, B)
			for b, tt := range ts {
				if tt < 0 || tt >= 1000 {
					t.Fatalf("timestep %d out of range", tt)
				}
				a, sg := math.Sqrt(ac[tt]), math.Sqrt(1-ac[tt])
				for i := b * per; i < (b+1)*per; i++ {
					noisy[i] = float32(a*float64(x0[i]) + sg*float64(eps[i]))
					target[i] = eps[i]
					if tc.prediction == "v_prediction" {
						target[i] = float32(a*float64(eps[i]) - sg*float64(x0[i]))
					}
				}
				snr := ac[tt] / (1 - ac[tt])
				weights[b] = 1
				switch {
				case tc.gamma > 0 && tc.prediction == "epsilon":
					weights[b] = math.Min(snr, tc.gamma) / snr
				case tc.gamma > 0:
					weights[b] = math.Min(snr, tc.gamma) / (snr + 1)
				}
			}
			dims := in["latents"].Shape().Dimensions
			m := &unet.Model{Config: task.unet.Config, Weights: before}
			pred, err := unet.NewRunner(r.backend, m, r.nnOpts).Forward(unet.HostInputs{
				Sample: tensors.FromFlatDataAndDimensions(noisy, dims...), Timesteps: in["timesteps"], Context: in["prompt_embeds"]})
			if err != nil {
				t.Fatal(err)
			}
			p := hostFloats(t, pred)
			var want float64
			for b := range B {
				var sse float64
				for i := b * per; i < (b+1)*per; i++ {
					d := float64(p[i]) - float64(target[i])
					sse += d * d
				}
				want += weights[b] * sse / float64(per) / float64(B)
			}
			if tc.gamma > 0 && slices.Min(weights) == 1 && tc.prediction == "epsilon" {
				t.Fatalf("timesteps %v: every Min-SNR weight is 1, the test cannot see the weighting", ts)
			}
			if got := float64(res.Loss); math.Abs(got-want) > 2e-5*math.Max(1, want) {
				t.Errorf("loss %v, hand computation %v (timesteps %v, weights %v)", got, want, ts, weights)
			}
			t.Logf("timesteps %v weights %.4g: loss %v, hand %v", ts, weights, res.Loss, want)
		})
	}
}

// TestDiffusionCaptionDropout: with proportion_empty_prompts = 1 every
// caption becomes the empty prompt, so the batch's embeddings are CLIP("").
func TestDiffusionCaptionDropout(t *testing.T) {
	root := t.TempDir()
	r := startRun(t, taskSpec(t, root, filepath.Join(root, "out"), "diffusion", "diffusion.proportion_empty_prompts=1"))
	in, _, err := r.task.(*diffusionTask).inputs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	empty, err := r.tokenizeAndEncode([]string{"", ""})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(hostFloats(t, in["prompt_embeds"]), hostFloats(t, empty.Context)); d != 0 {
		t.Errorf("dropped captions' embeddings differ from CLIP(\"\") by %g", d)
	}
}

// TestVAELossMatchesHandComputation: the loss of one runner batch of the
// vae task is the mean reconstruction error of decode(mean + exp(logvar/2)·noise)
// plus kl_weight times the batch mean of the diagonal Gaussian's closed-form
// KL, 0.5·Σ(mean² + exp(logvar) - 1 - logvar), computed here with the
// encoder and decoder run on their own.
func TestVAELossMatchesHandComputation(t *testing.T) {
	root := t.TempDir()
	for _, rec := range []string{"l2", "l1"} {
		t.Run(rec, func(t *testing.T) {
			const klWeight = 0.01 // large enough that the KL term shows in the total
			s := taskSpec(t, root, filepath.Join(root, rec), "vae", "vae.reconstruction="+rec, "vae.kl_weight="+formatG(klWeight))
			r := startRun(t, s)
			task := r.task.(*vaeTask)
			in, before, res := firstStep(t, task.tr, task.inputs)
			m := &vae.Model{Config: task.model.Config, Weights: before}
			vr := vae.NewRunner(r.backend, m, r.nnOpts)
			post, err := vr.Encode(in["pixels"], 0)
			if err != nil {
				t.Fatal(err)
			}
			mean, logVar, noise := hostFloats(t, post.Mean), hostFloats(t, post.LogVar), hostFloats(t, in["noise"])
			z := make([]float32, len(mean))
			B := in["pixels"].Shape().Dimensions[0]
			var kl float64
			for i := range z {
				z[i] = mean[i] + float32(math.Exp(0.5*float64(logVar[i])))*noise[i]
				m, lv := float64(mean[i]), float64(logVar[i])
				kl += 0.5 * (m*m + math.Exp(lv) - 1 - lv) / float64(B)
			}
			recon, err := vr.Decode(tensors.FromFlatDataAndDimensions(z, post.Mean.Shape().Dimensions...), 0)
			if err != nil {
				t.Fatal(err)
			}
			x, y := hostFloats(t, in["pixels"]), hostFloats(t, recon)
			var errSum float64
			for i := range x {
				d := float64(y[i]) - float64(x[i])
				if rec == "l2" {
					errSum += d * d
				} else {
					errSum += math.Abs(d)
				}
			}
			wantRec := errSum / float64(len(x))
			want := wantRec + klWeight*kl
			gotRec := float64(task.lastOutputs(t, res.Outputs, "reconstruction_loss"))
			gotKL := float64(task.lastOutputs(t, res.Outputs, "kl"))
			if math.Abs(gotRec-wantRec) > 1e-5*math.Max(1, wantRec) || math.Abs(gotKL-kl) > 1e-4*math.Max(1, kl) ||
				math.Abs(float64(res.Loss)-want) > 1e-5*math.Max(1, want) {
				t.Errorf("loss %v (reconstruction %v, KL %v); hand computation %v (%v, %v)", res.Loss, gotRec, gotKL, want, wantRec, kl)
			}
			t.Logf("loss %v = %v + %g·%v; hand %v", res.Loss, gotRec, klWeight, gotKL, want)
		})
	}
}

func (t *vaeTask) lastOutputs(tb testing.TB, outs map[string]*tensors.Tensor, name string) float32 {
	tb.Helper()
	v, ok := outs[name]
	if !ok {
		tb.Fatalf("step has no output %q", name)
	}
	return tensors.ToScalar[float32](v)
}

func formatG(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// checkTaskResumes runs s for 6 steps, then again killed after step 3
// and resumed (from the step-2 checkpoint): the resumed steps' losses equal
// the uninterrupted run's bit for bit, and so do the final checkpoints'
// weights, every group; the resumed run does not log a start from scratch.
func checkTaskResumes(t *testing.T, root string, task string, sets ...string) (whole, resumed *Result) {
	t.Helper()
	ws := taskSpec(t, root, filepath.Join(root, "whole"), task, sets...)
	whole, err := Run(context.Background(), ws, quiet())
	if err != nil {
		t.Fatal(err)
	}
	s := taskSpec(t, root, filepath.Join(root, "killed"), task, sets...)
	opts := quiet()
	opts.StopAfter = 3
	if _, err := Run(context.Background(), s, opts); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("killed run: %v, want ErrInterrupted", err)
	}
	s.Run.Resume = "latest"
	var log strings.Builder
	resumedOpts := quiet()
	resumedOpts.Log = &log
	resumed, err = Run(context.Background(), s, resumedOpts)
	if err != nil {
		t.Fatal(err)
	}
	// The resumed run's weights come from its checkpoint, not a fresh init.
	if strings.Contains(log.String(), "from scratch") || !strings.Contains(log.String(), "resuming from") {
		t.Errorf("resumed run's log says:\n%s\nwant a resume and no training from scratch", log.String())
	}
	if len(whole.Losses) != 6 || len(resumed.Losses) != 4 {
		t.Fatalf("%d uninterrupted and %d resumed steps, want 6 and 4", len(whole.Losses), len(resumed.Losses))
	}
	for i, loss := range resumed.Losses {
		if want := whole.Losses[2+i]; loss != want {
			t.Errorf("step %d: resumed loss %v, uninterrupted %v", 3+i, loss, want)
		}
	}
	compareCheckpoints(t, whole.Checkpoint, resumed.Checkpoint)
	return whole, resumed
}

// compareCheckpoints requires two checkpoints to hold the same weight
// groups with bitwise equal tensors.
func compareCheckpoints(t *testing.T, a, b string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(a, "*.safetensors"))
	if err != nil || len(files) < 3 {
		t.Fatalf("checkpoint %s holds %v (%v), want a model and the two AdamW moments", a, files, err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".safetensors"))
	}
	ga, _, err := loadCheckpoint(a, names)
	if err != nil {
		t.Fatal(err)
	}
	gb, _, err := loadCheckpoint(b, names)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range names {
		for _, name := range ga[g].Names() {
			x, _, _ := ga[g].Float32(name)
			y, _, err := gb[g].Float32(name)
			if err != nil {
				t.Fatalf("%s %s: %v", g, name, err)
			}
			for i := range x {
				if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
					t.Fatalf("%s %s[%d]: uninterrupted %v, resumed %v", g, name, i, x[i], y[i])
				}
			}
		}
	}
	t.Logf("final checkpoints equal bit for bit: groups %v", names)
}

// TestDiffusionRunResumesBitExactly: a diffusion run with every random
// draw on (caption dropout, offset noise, input perturbation) and a
// scheduled EMA, killed and resumed, repeats the uninterrupted run.
func TestDiffusionRunResumesBitExactly(t *testing.T) {
	checkTaskResumes(t, t.TempDir(), "diffusion", "diffusion.proportion_empty_prompts=0.5", "diffusion.noise_offset=0.1",
		"diffusion.input_perturbation=0.1", "diffusion.snr_gamma=5", "diffusion.use_ema=true", "diffusion.ema_use_warmup=true",
		"diffusion.from_scratch=true")
}

// TestVAERunResumesBitExactly: a vae run from scratch, killed and resumed,
// repeats the uninterrupted run.
func TestVAERunResumesBitExactly(t *testing.T) {
	checkTaskResumes(t, t.TempDir(), "vae", "vae.from_scratch=true", "vae.kl_weight=0.001")
}

// TestDiffusionExportSamplesWithDDIM: a diffusion run exports a
// StableDiffusionPipeline folder with a DDIMScheduler whose unet/ holds the
// EMA weights of the final checkpoint; golcm loads it on its own and samples
// it with DDIM and classifier-free guidance; validation wrote its grid.
func TestDiffusionExportSamplesWithDDIM(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	s := taskSpec(t, root, out, "diffusion", "optim.max_train_steps=2", "diffusion.use_ema=true",
		"diffusion.ema_use_warmup=true", "diffusion.proportion_empty_prompts=0.2", "run.validation_every=2",
		`run.validation_prompts=["a red circle", "a blue square"]`, "run.validation_inference_steps=[2]")
	res, err := Run(context.Background(), s, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "validation", "unet-step-00000002.png")); err != nil {
		t.Errorf("validation grid: %v", err)
	}
	checkModelIndex(t, out, "StableDiffusionPipeline", map[string][]any{
		"unet": {"diffusers", "UNet2DConditionModel"}, "scheduler": {"diffusers", "DDIMScheduler"},
		"vae": {"diffusers", "AutoencoderKL"}, "text_encoder": {"transformers", "CLIPTextModel"},
		"tokenizer": {"transformers", "CLIPTokenizer"},
	})
	p, err := pipeline.Load(out, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ck, _, err := loadCheckpoint(res.Checkpoint, []string{"ema", "unet"})
	if err != nil {
		t.Fatal(err)
	}
	differs := false
	for _, name := range ck["ema"].Names() {
		want, _, _ := ck["ema"].Float32(name)
		raw, _, _ := ck["unet"].Float32(name)
		got, _, err := p.UNet.Weights.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(got, want); d != 0 {
			t.Fatalf("exported unet %s differs from the EMA weights by %g", name, d)
		}
		differs = differs || maxDiff(raw, want) != 0
	}
	if !differs {
		t.Error("the EMA weights equal the trained ones: the test cannot tell which was exported")
	}
	sched, err := lcm.ReadSchedulerConfig(p.SchedulerConfig)
	if err != nil || sched.ClassName != "DDIMScheduler" || sched.PredictionType != "epsilon" || sched.BetaSchedule != "scaled_linear" {
		t.Errorf("exported scheduler %+v (%v)", sched, err)
	}
	sm, err := sampling.NewSampler(backendFor(t), p, nil, nil, nn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := sm.Sample(sampling.SampleRequest{Prompts: []string{"a red circle", "a blue square"}, Steps: 3, Guidance: 3,
		Seed: 1, Scheduler: "ddim"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Images) != 2 || got.Width != 64 || got.Height != 64 {
		t.Fatalf("sampled %d images of %dx%d, want 2 of 64x64", len(got.Images), got.Width, got.Height)
	}
	for i, v := range got.Pixels {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("pixel %d is %v", i, v)
		}
	}
}

// TestVAEExportRoundTrips: a vae run exports vae/ in diffusers' layout
// holding the final checkpoint's weights and scaling_factor = 1/std of the
// latents; ExportCheckpoint writes the same from the checkpoint; the
// validation PSNR is the mean PSNR of the validation images' reconstructions
// computed here with the exported VAE.
func TestVAEExportRoundTrips(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	s := taskSpec(t, root, out, "vae", "optim.max_train_steps=4", "run.validation_every=4", "vae.validation_images=5",
		"vae.scaling_images=8")
	res, err := Run(context.Background(), s, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "validation", "vae-step-00000004.png")); err != nil {
		t.Errorf("validation grid: %v", err)
	}
	m, err := vae.Load(filepath.Join(out, "vae"), "")
	if err != nil {
		t.Fatal(err)
	}
	ck, _, err := loadCheckpoint(res.Checkpoint, []string{"vae"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ck["vae"].Names() {
		want, _, _ := ck["vae"].Float32(name)
		got, _, err := m.Weights.Float32(name)
		if err != nil || maxDiff(got, want) != 0 {
			t.Fatalf("exported %s differs from the checkpoint (%v)", name, err)
		}
	}

	// The validation images: the first 5 of the generated data, in stream order (the seed orders
	// the files).
	cfg := s.Data.Config
	cfg.Seed = s.Run.Seed
	cfg.Sources, cfg.Format, cfg.ShuffleBuffer, cfg.Epochs, cfg.BatchSize = []string{filepath.Join(out, "synthetic")}, "imagefolder", 0, 1, 8
	loader, err := datasets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := loader.Next(context.Background())
	loader.Close()
	if err != nil {
		t.Fatal(err)
	}
	b := backendFor(t)
	vr := vae.NewRunner(b, m, nn.Options{})
	pixels := tensors.FromFlatDataAndDimensions(batch.Pixels, len(batch.Captions), 3, 64, 64)
	post, err := vr.Encode(pixels, 0)
	if err != nil {
		t.Fatal(err)
	}
	recon, err := vr.Decode(post.Mean, 0)
	if err != nil {
		t.Fatal(err)
	}
	x, y := batch.Pixels, hostFloats(t, recon)

	per := 3 * 64 * 64
	var psnr float64
	for i := range 5 {
		var sse float64
		for j := i * per; j < (i+1)*per; j++ {
			d := float64(min(max(y[j], -1), 1)) - float64(x[j])
			sse += d * d
		}
		psnr += 10 * math.Log10(4/(sse/float64(per))) / 5
	}
	if got := res.Metrics["validation_psnr"]; math.Abs(got-psnr) > 1e-4 {
		t.Errorf("validation PSNR %v, computed here %v", got, psnr)
	}

	// The latents of the 8 training images have expected variance var(mean) + E[exp(logvar)]
	// over their posterior samples; the export's sample std estimates its root (2048 values: a
	// few percent of sampling error).
	mean, logVar := hostFloats(t, post.Mean), hostFloats(t, post.LogVar)
	all, err := vr.Encode(tensors.FromFlatDataAndDimensions(batch.Pixels, 8, 3, 64, 64), 0)
	if err == nil {
		mean, logVar = hostFloats(t, all.Mean), hostFloats(t, all.LogVar)
	}
	var mu, ev float64
	for i := range mean {
		mu += float64(mean[i]) / float64(len(mean))
		ev += math.Exp(float64(logVar[i])) / float64(len(mean))
	}
	var vm float64
	for _, v := range mean {
		vm += (float64(v) - mu) * (float64(v) - mu) / float64(len(mean))
	}
	wantStd := math.Sqrt(vm + ev)
	if got := 1 / m.Config.ScalingFactor; math.Abs(got-wantStd) > 0.05*wantStd || math.Abs(res.Metrics["scaling_factor"]-m.Config.ScalingFactor) > 1e-12 {
		t.Errorf("scaling_factor %v: latent std %v, expected about %v", m.Config.ScalingFactor, got, wantStd)
	}
	t.Logf("validation PSNR %.3f dB; scaling_factor %.4f (std %.4f, expected %.4f)", psnr, m.Config.ScalingFactor, 1/m.Config.ScalingFactor, wantStd)

	// All 8 images of the data, in batches of data.batch_size, the last one short: no image is
	// left out for not filling a batch.
	s.Data.BatchSize = 3
	imgs, err := (&vaeTask{r: &run{spec: s}}).images(nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 3 || len(imgs[2].pixels) != 2*per {
		t.Errorf("read %d batches of validation images (last of %d values), want 3, the last of 2 images", len(imgs), len(imgs[len(imgs)-1].pixels))
	}

	// The checkpoint exports to the same vae/.
	again := filepath.Join(root, "again")
	if _, err := ExportCheckpoint(res.Checkpoint, again, quiet()); err != nil {
		t.Fatal(err)
	}
	m2, err := vae.Load(filepath.Join(again, "vae"), "")
	if err != nil {
		t.Fatal(err)
	}
	if m2.Config.ScalingFactor != m.Config.ScalingFactor {
		t.Errorf("ExportCheckpoint's scaling_factor %v, the run's %v", m2.Config.ScalingFactor, m.Config.ScalingFactor)
	}
}

func backendFor(t *testing.T) compute.Backend {
	t.Helper()
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestScratchUNetArchitectures: a from-scratch UNet takes its architecture
// from the pipeline, a preset (with the pipeline's latent channels) or a
// config.json file, and its weights from the seed alone.
func TestScratchUNetArchitectures(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "pipeline")
	if err := pipeline.InitFashion(p, 1); err != nil {
		t.Fatal(err)
	}
	pipe, err := pipeline.Load(p, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	own, err := scratchUNet("", pipe.UNet, 4, 9)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := scratchUNet(filepath.Join(p, "unet", "config.json"), pipe.UNet, 4, 9)
	preset, err := scratchUNet("tiny", pipe.UNet, 4, 9)
	if err != nil {
		t.Fatal(err)
	}
	if again == nil || preset.Config.InChannels != 4 || preset.Config.OutChannels != 4 || len(preset.Config.BlockOutChannels) != 2 {
		t.Fatalf("config file %v; preset tiny: %+v", again, preset.Config)
	}
	for _, m := range []*unet.Model{own, again, preset} {
		if err := m.CheckWeights(); err != nil {
			t.Error(err)
		}
		if err := pipe.CheckUNet(m); err != nil {
			t.Error(err)
		}
	}
	name := own.Weights.Names()[0]
	a, _, _ := own.Weights.Float32(name)
	b, _, _ := again.Weights.Float32(name)
	orig, _, _ := pipe.UNet.Weights.Float32(name)
	if maxDiff(a, b) != 0 || maxDiff(a, orig) == 0 {
		t.Errorf("%s: the same seed and architecture gave different weights, or the pipeline's own", name)
	}
	if _, err := scratchUNet("no-such-preset", pipe.UNet, 4, 9); err == nil || !strings.Contains(err.Error(), "neither a preset") {
		t.Errorf("unknown architecture: %v", err)
	}
}

// TestVAEValidatesAndExportsBuckets: with data.buckets the validation and
// scaling images come in several sizes; validation and export batch each
// size apart (a batch holds one size), and every image counts.
func TestVAEValidatesAndExportsBuckets(t *testing.T) {
	root := t.TempDir()
	s := taskSpec(t, root, filepath.Join(root, "out"), "vae", "optim.max_train_steps=2", "run.validation_every=2",
		"data.buckets=[\"64x64\", \"80x48\", \"48x80\"]", "vae.validation_images=8", "vae.scaling_images=8")
	var log strings.Builder
	opts := quiet()
	opts.Log = &log
	if _, err := Run(context.Background(), s, opts); err != nil {
		t.Fatal(err)
	}
	imgs, err := (&vaeTask{r: &run{spec: s}}).images(nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	sizes, n := map[[2]int]bool{}, 0
	for _, b := range imgs {
		sizes[[2]int{b.w, b.h}] = true
		n += b.size()
		if len(b.pixels) != b.size()*3*b.h*b.w {
			t.Errorf("a %dx%d batch holds %d values, not whole images", b.w, b.h, len(b.pixels))
		}
	}
	if len(sizes) < 2 || n != 8 {
		t.Fatalf("the 8 images come in sizes %v (%d images), want several", sizes, n)
	}
	for _, want := range []string{"PSNR", "over 8 images", "latents of 8 images"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
}
