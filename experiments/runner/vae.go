package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/metrics"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/vae"
	"github.com/golcm/golcm/objectives"
	"github.com/golcm/golcm/sampling"
	"github.com/golcm/golcm/train"
)

// vaeTask trains the pipeline's AutoencoderKL on reconstruction plus KL
// (objectives.Autoencoder), as diffusers' train_autoencoderkl.py without
// its LPIPS and adversarial terms.
type vaeTask struct {
	r     *run
	obj   objectives.Autoencoder
	model *vae.Model // config and trained weights
	tr    *train.Trainer
	last  map[string]any // the last step's loss terms

	recon, encode *train.Program // validation: decode(mode); export: posterior samples only
	valImages     []imageBatch   // the validation images
}

// imageBatch is a batch of images of one size, pixels [B, 3, H, W].
type imageBatch struct {
	pixels []float32
	h, w   int
}

// size is the batch's number of images.
func (b imageBatch) size() int { return len(b.pixels) / (3 * b.h * b.w) }

// tensor is the batch as the programs take it.
func (b imageBatch) tensor() *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(b.pixels, b.size(), 3, b.h, b.w)
}

func (t *vaeTask) build() error {
	r, v := t.r, t.r.spec.VAE
	t.obj = objectives.Autoencoder{Reconstruction: objectives.Reconstruction(v.Reconstruction), KLWeight: v.KLWeight}
	if err := t.obj.Validate(); err != nil {
		return fmt.Errorf("[vae]: %w", err)
	}
	t.model = r.pipe.VAE
	if v.FromScratch {
		w := nn.RandomWeights(t.model.Config.ParamShapes(), uint64(r.spec.Run.Seed)^0x766165, 0.02)
		t.model = &vae.Model{Config: t.model.Config, Weights: w}
		r.logFromScratch("vae", "an AutoencoderKL", w.NumParameters())
	}
	cfg := t.model.Config
	o := r.spec.Optim
	var err error
	t.tr, err = train.New(r.backend, train.Task{
		Trained: t.model.Weights, Inputs: []string{"pixels", "noise"}, NN: r.nnOpts,
		Optimizer: train.AdamW{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay,
			MaxGradNorm: o.MaxGradNorm, AccumulationSteps: o.GradientAccumulationSteps},
		Loss: func(groups map[string]*nn.Params, in map[string]*Node) (*Node, map[string]*Node) {
			root := groups[train.TrainedGroup].Root("")
			post := vae.Encode(root, cfg, in["pixels"])
			l := t.obj.Loss(in["pixels"], vae.Decode(root, cfg, post.Sample(in["noise"])), post.Mean, post.LogVar)
			return l.Total, map[string]*Node{"reconstruction_loss": l.Reconstruction, "kl": l.KL}
		},
	})
	if err != nil {
		return err
	}
	// Programs over the trained weights, which they read at every run.
	group := []train.Group{{Name: "vae", Weights: t.model.Weights}}
	if t.recon, err = train.Compile(r.backend, group, []string{"pixels"}, r.nnOpts, func(g map[string]*nn.Params, in map[string]*Node) map[string]*Node {
		root := g["vae"].Root("")
		// AutoencoderKL.forward without sample_posterior: decode the mode.
		return map[string]*Node{"recon": vae.Decode(root, cfg, vae.Encode(root, cfg, in["pixels"]).Mode())}
	}); err != nil {
		return err
	}
	t.encode, err = train.Compile(r.backend, group, []string{"pixels", "noise"}, r.nnOpts, func(g map[string]*nn.Params, in map[string]*Node) map[string]*Node {
		root := g["vae"].Root("")
		// Fed the whole VAE, it reads only the encoder: the decoder's
		// weights are bound, not decoded with.
		for _, name := range t.model.Weights.Names() {
			root.Param(name)
		}
		return map[string]*Node{"latents": vae.Encode(root, cfg, in["pixels"]).Sample(in["noise"])}
	})
	return err
}

func (t *vaeTask) trainer() *train.Trainer { return t.tr }
func (t *vaeTask) groups() map[string]*nn.Weights {
	return map[string]*nn.Weights{"vae": t.tr.Trained, "adam_m": t.tr.AdamM, "adam_v": t.tr.AdamV}
}
func (t *vaeTask) metrics() map[string]any { return t.last }

// latentDims is the posterior's shape for a pixel batch [B, 3, H, W].
func (t *vaeTask) latentDims(B, H, W int) []int {
	f := t.model.Config.DownsampleFactor()
	return []int{B, t.model.Config.LatentChannels, H / f, W / f}
}

// next draws the posterior noise of the batch from the run's generator.
func (t *vaeTask) next(ctx context.Context) (func() (*lcm.StepResult, error), float64, error) {
	return trainerStep(ctx, "vae", t.tr, t.inputs, func(res *train.Result) {
		t.last = map[string]any{}
		for _, name := range []string{"reconstruction_loss", "kl"} {
			if v, ok := res.Outputs[name]; ok {
				t.last[name] = tensors.ToScalar[float32](v)
			}
		}
	})
}

// inputs turns the next data batch into the step's named inputs.
func (t *vaeTask) inputs(ctx context.Context) (map[string]*tensors.Tensor, float64, error) {
	r := t.r
	batch, err := r.loader.Next(ctx)
	if err != nil {
		return nil, 0, err
	}
	B, H, W := len(batch.Captions), batch.Height, batch.Width
	dims := t.latentDims(B, H, W)
	in := map[string]*tensors.Tensor{
		"pixels": tensors.FromFlatDataAndDimensions(batch.Pixels, B, 3, H, W),
		"noise":  tensors.FromFlatDataAndDimensions(r.normals(dims[0]*dims[1]*dims[2]*dims[3]), dims...),
	}
	lr, err := r.learningRate()
	if err != nil {
		return nil, 0, err
	}
	r.dataPos = r.loader.Position()
	return in, lr, nil
}

// images reads the first n images of sources (the training data when
// sources is empty) in stream order, in batches of one size (with
// data.buckets the images come in several).
func (t *vaeTask) images(sources []string, n int) ([]imageBatch, error) {
	cfg, err := t.r.dataConfig()
	if err != nil {
		return nil, err
	}
	if len(sources) > 0 {
		cfg.Sources, cfg.Format = sources, t.r.spec.Data.Format
	}
	// One image per loader batch, since a loader drops its last partial
	// batch; they are grouped into batches of up to data.batch_size here.
	batch := min(cfg.BatchSize, n)
	cfg.ShuffleBuffer, cfg.RandomFlip, cfg.Epochs, cfg.BatchSize = 0, false, 1, 1
	loader, err := datasets.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("vae images: %w", err)
	}
	defer loader.Close()
	var out []imageBatch
	for got := 0; got < n; got++ {
		b, err := loader.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("vae images: %w", err)
		}
		if k := len(out) - 1; k < 0 || out[k].size() == batch || out[k].h != b.Height || out[k].w != b.Width {
			out = append(out, imageBatch{pixels: make([]float32, 0, batch*len(b.Pixels)), h: b.Height, w: b.Width})
		}
		out[len(out)-1].pixels = append(out[len(out)-1].pixels, b.Pixels...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("vae images: no images in %v", cfg.Sources)
	}
	return out, nil
}

func (t *vaeTask) validationGrid(step int) string {
	return validationGrid(t.r.spec.Run.OutputDir, "vae", step)
}

// validate reconstructs the validation images (decoding the posterior's
// mode), logs their mean PSNR (pixels clamped to [-1, 1], as an image shows
// them) to metrics.jsonl, and writes a grid: inputs above their
// reconstructions.
func (t *vaeTask) validate(step int) error {
	r, v := t.r, t.r.spec.VAE
	if t.valImages == nil {
		var err error
		if t.valImages, err = t.images(v.ValidationSources, v.ValidationImages); err != nil {
			return err
		}
	}
	var sum float64
	n := 0
	var inputs, recons []*image.RGBA
	for _, b := range t.valImages {
		px, B, H, W := b.pixels, b.size(), b.h, b.w
		outs, err := t.recon.Run(map[string]*tensors.Tensor{"pixels": b.tensor()})
		if err != nil {
			return fmt.Errorf("vae validation at step %d: %w", step, err)
		}
		rec, _, err := nn.TensorFloat32(outs["recon"])
		if err != nil {
			return err
		}
		for i := range rec {
			rec[i] = min(max(rec[i], -1), 1)
		}
		per := 3 * H * W
		for i := range B {
			p, err := metrics.PSNR(px[i*per:(i+1)*per], rec[i*per:(i+1)*per], 2)
			if err != nil {
				return err
			}
			sum += p
			n++
		}
		if k := min(B, v.GridImages-len(inputs)); k > 0 {
			inputs = append(inputs, sampling.ToRGBA(sampling.DenormalizeImage(px[:k*per]), k, H, W)...)
			recons = append(recons, sampling.ToRGBA(sampling.DenormalizeImage(rec[:k*per]), k, H, W)...)
		}
	}
	psnr := sum / float64(n)
	if r.result.Metrics == nil {
		r.result.Metrics = map[string]float64{}
	}
	r.result.Metrics["validation_psnr"] = psnr
	fmt.Fprintf(r.log, "\nvalidation at step %d: reconstruction PSNR %.2f dB over %d images\n", step, psnr, n)
	if err := r.logLine(map[string]any{"step": step, "validation_psnr": psnr, "validation_images": n}); err != nil {
		return err
	}
	return sampling.SaveGrid(t.validationGrid(step), [][]*image.RGBA{inputs, recons}, []string{"input", "reconstruction"}, nil)
}

// export writes vae/ in diffusers' layout (config.json and
// diffusion_pytorch_model.safetensors) with scaling_factor = 1/std of the
// latents of vae.scaling_images training images (posterior samples, as the
// LDM code measured it).
func (t *vaeTask) export() error {
	r, out := t.r, t.r.spec.Run.OutputDir
	w := t.model.Weights
	if err := checkFinite(map[string]*nn.Weights{"vae": w}); err != nil {
		return fmt.Errorf("export: not writing %s: %w", out, err)
	}
	images, err := t.images(nil, r.spec.VAE.ScalingImages)
	if err != nil {
		return err
	}
	var stats objectives.LatentStats
	rng := rand.New(rand.NewPCG(uint64(r.spec.Run.Seed), 0x7363616c65))
	n := 0
	for _, b := range images {
		n += b.size()
		dims := t.latentDims(b.size(), b.h, b.w)
		noise := make([]float32, dims[0]*dims[1]*dims[2]*dims[3])
		for i := range noise {
			noise[i] = float32(rng.NormFloat64())
		}
		outs, err := t.encode.Run(map[string]*tensors.Tensor{
			"pixels": b.tensor(),
			"noise":  tensors.FromFlatDataAndDimensions(noise, dims...),
		})
		if err != nil {
			return fmt.Errorf("export: latent statistics: %w", err)
		}
		lat, _, err := nn.TensorFloat32(outs["latents"])
		if err != nil {
			return err
		}
		stats.Add(lat)
	}
	scale, err := stats.ScalingFactor()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(r.pipe.VAEDir, "config.json"))
	if err == nil {
		err = json.Unmarshal(raw, &cfg)
	}
	if err != nil {
		return fmt.Errorf("export: the VAE's config.json: %w", err)
	}
	cfg["scaling_factor"] = scale
	dir := filepath.Join(out, "vae")
	if err := writeJSON(filepath.Join(dir, "config.json"), cfg); err != nil {
		return err
	}
	if err := nn.WriteWeights(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), w, "F32"); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if r.result.Metrics == nil {
		r.result.Metrics = map[string]float64{}
	}
	r.result.Metrics["latent_std"], r.result.Metrics["scaling_factor"] = stats.Std(), scale
	fmt.Fprintf(r.log, "latents of %d images: mean %.4f, std %.4f: scaling_factor %.5f written to %s\n",
		n, stats.Mean(), stats.Std(), scale, dir)
	r.result.Exported = append(r.result.Exported, dir)
	return nil
}
