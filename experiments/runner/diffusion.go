package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/objectives"
	"github.com/golcm/golcm/sampling"
	"github.com/golcm/golcm/train"
)

// diffusionTask trains the UNet on the noise-prediction objective of
// diffusers' train_text_to_image.py (objectives.Diffusion): the text
// encoder and the VAE run frozen outside the step, as in the LCD task.
type diffusionTask struct {
	r       *run
	obj     objectives.Diffusion
	ema     objectives.EMADecay
	unet    *unet.Model // the trained UNet: config, trained weights, config.json
	tr      *train.Trainer
	sampler *sampling.Sampler
}

// The diffusion step's inputs.
var diffusionInputs = []string{"latents", "noise", "timesteps", "alpha", "sigma", "weight", "prompt_embeds"}

func (t *diffusionTask) build() error {
	r, d := t.r, t.r.spec.Diffusion
	pt := r.schedule.PredictionType
	if d.PredictionType != "" {
		pt = lcm.PredictionType(d.PredictionType)
	}
	t.obj = objectives.Diffusion{PredictionType: pt, SNRGamma: d.SNRGamma, NoiseOffset: d.NoiseOffset,
		InputPerturbation: d.InputPerturbation}
	if err := t.obj.Validate(); err != nil {
		return fmt.Errorf("diffusion.prediction_type (or the scheduler's): %w", err)
	}
	t.ema = objectives.EMADecay{Decay: d.EMADecay, MinDecay: d.EMAMinDecay, UpdateAfterStep: d.EMAUpdateAfterStep,
		UseWarmup: d.EMAUseWarmup, InvGamma: d.EMAInvGamma, Power: d.EMAPower}
	if err := t.ema.Validate(); err != nil {
		return fmt.Errorf("[diffusion]: %w", err)
	}
	m := r.pipe.UNet
	if d.FromScratch {
		var err error
		if m, err = scratchUNet(d.UNetConfig, m, r.pipe.VAE.Config.LatentChannels, uint64(r.spec.Run.Seed)); err != nil {
			return err
		}
		if err := r.pipe.CheckUNet(m); err != nil {
			return fmt.Errorf("diffusion.unet_config = %q: %w", d.UNetConfig, err)
		}
		r.logFromScratch("diffusion", "a UNet", m.Weights.NumParameters())
	}
	if m.Config.TextTime() {
		return fmt.Errorf("task = \"diffusion\" trains SD 1.x/2.x UNets; %s is an SD-XL UNet", r.spec.Model.Path)
	}
	t.unet = m
	inputs := slices.Clone(diffusionInputs)
	if d.NoiseOffset > 0 {
		inputs = append(inputs, "offset_noise")
	}
	if d.InputPerturbation > 0 {
		inputs = append(inputs, "perturbation")
	}
	o := r.spec.Optim
	opt := train.AdamW{Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps, WeightDecay: o.WeightDecay,
		MaxGradNorm: o.MaxGradNorm, AccumulationSteps: o.GradientAccumulationSteps}
	if d.UseEMA {
		opt.EMADecayAt = t.ema.At
	}
	var err error
	t.tr, err = train.New(r.backend, train.Task{
		Trained: m.Weights, EMA: d.UseEMA, Inputs: inputs, Loss: t.loss, Optimizer: opt, NN: r.nnOpts,
	})
	return err
}

// loss is train_text_to_image.py's: the noisy latents and the target, the
// UNet's prediction, and the (Min-SNR weighted) mean squared error.
func (t *diffusionTask) loss(groups map[string]*nn.Params, in map[string]*Node) (*Node, map[string]*Node) {
	noisy, target := t.obj.NoisyAndTarget(in["latents"], in["noise"], in["offset_noise"], in["perturbation"], in["alpha"], in["sigma"])
	pred := unet.Forward(groups[train.TrainedGroup].Root(""), t.unet.Config,
		unet.Inputs{Sample: noisy, Timesteps: in["timesteps"], Context: in["prompt_embeds"]})
	return objectives.WeightedMSE(pred, target, in["weight"]), nil
}

func (t *diffusionTask) trainer() *train.Trainer { return t.tr }
func (t *diffusionTask) groups() map[string]*nn.Weights {
	return map[string]*nn.Weights{"unet": t.tr.Trained, "ema": t.tr.EMA, "adam_m": t.tr.AdamM, "adam_v": t.tr.AdamV}
}
func (t *diffusionTask) metrics() map[string]any { return nil }

// next draws, in this order: the timesteps, the caption-dropout draws, the
// noise, the VAE posterior noise, the offset noise and the perturbation.
func (t *diffusionTask) next(ctx context.Context) (func() (*lcm.StepResult, error), float64, error) {
	return trainerStep(ctx, "diffusion", t.tr, t.inputs, nil)
}

// inputs turns the next data batch into the step's named inputs.
func (t *diffusionTask) inputs(ctx context.Context) (map[string]*tensors.Tensor, float64, error) {
	r, d := t.r, t.r.spec.Diffusion
	batch, err := r.loader.Next(ctx)
	if err != nil {
		return nil, 0, err
	}
	B, H, W := len(batch.Captions), batch.Height, batch.Width
	rng := rand.New(r.rng)
	timesteps := make([]int64, B)
	for i := range timesteps {
		timesteps[i] = int64(rng.IntN(r.schedule.NumTrainTimesteps)) // torch.randint(0, T)
	}
	u := make([]float64, B)
	for i := range u {
		u[i] = rng.Float64()
	}
	captions, err := objectives.DropCaptions(batch.Captions, d.ProportionEmptyPrompts, u)
	if err != nil {
		return nil, 0, err
	}
	f := r.pipe.VAE.Config.DownsampleFactor()
	C := r.pipe.VAE.Config.LatentChannels
	dims := []int{B, C, H / f, W / f}
	size := B * C * (H / f) * (W / f)
	in := map[string]*tensors.Tensor{
		"noise": tensors.FromFlatDataAndDimensions(r.normals(size), dims...),
	}
	vaeNoise := tensors.FromFlatDataAndDimensions(r.normals(size), dims...)
	if d.NoiseOffset > 0 {
		in["offset_noise"] = tensors.FromFlatDataAndDimensions(r.normals(B*C), B, C, 1, 1)
	}
	if d.InputPerturbation > 0 {
		in["perturbation"] = tensors.FromFlatDataAndDimensions(r.normals(size), dims...)
	}
	enc, err := r.encode(batch, captions, vaeNoise)
	if err != nil {
		return nil, 0, err
	}
	in["latents"], in["prompt_embeds"] = enc.latents, enc.cond.Context
	coefs, err := t.obj.Coefficients(r.schedule, timesteps)
	if err != nil {
		return nil, 0, err
	}
	in["timesteps"] = ints(coefs.Timesteps)
	in["alpha"], in["sigma"], in["weight"] = vec(coefs.Alpha), vec(coefs.Sigma), vec(coefs.Weight)
	lr, err := r.learningRate()
	if err != nil {
		return nil, 0, err
	}
	r.dataPos = r.loader.Position()
	return in, lr, nil
}

func vec(x []float32) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(x, len(x)) }
func ints(x []int64) *tensors.Tensor  { return tensors.FromFlatDataAndDimensions(x, len(x)) }

// trainerStep is task.next for a task on a train.Trainer: inputs draws
// the batch; after, when set, reads the step's result. The result is given
// in the form the loop and Options.OnStep take.
func trainerStep(ctx context.Context, name string, tr *train.Trainer,
	inputs func(context.Context) (map[string]*tensors.Tensor, float64, error), after func(*train.Result),
) (func() (*lcm.StepResult, error), float64, error) {
	in, lr, err := inputs(ctx)
	if err != nil {
		return nil, 0, err
	}
	return func() (*lcm.StepResult, error) {
		res, err := tr.Step(in, lr)
		if err != nil {
			return nil, fmt.Errorf("%s step %d: %w", name, tr.Steps+1, err)
		}
		if after != nil {
			after(res)
		}
		return &lcm.StepResult{Applied: res.Applied, Loss: res.Loss, GradNorm: res.GradNorm, WeightsFinite: res.WeightsFinite}, nil
	}, lr, nil
}

// exported is the UNet the run exports and validates: the EMA weights with
// use_ema (as the script saves them), else the trained ones.
func (t *diffusionTask) exported() *unet.Model {
	w := t.tr.Trained
	if t.tr.EMA != nil {
		w = t.tr.EMA
	}
	return &unet.Model{Config: t.unet.Config, Weights: w, RawConfig: t.unet.RawConfig}
}

func (t *diffusionTask) validationGrid(step int) string {
	return validationGrid(t.r.spec.Run.OutputDir, "unet", step)
}

// validate samples the validation prompts with DDIM and classifier-free
// guidance (run.validation_guidance) at each step count of
// run.validation_inference_steps: rows are prompts, columns step counts.
func (t *diffusionTask) validate(step int) error {
	r, s := t.r, t.r.spec
	if len(s.Run.ValidationPrompts) == 0 || len(s.Run.ValidationInferenceSteps) == 0 {
		return nil
	}
	if t.sampler == nil {
		// The sampler reads the scheduler from a file: the one the export
		// writes, which states the prediction type trained.
		path := filepath.Join(s.Run.OutputDir, "scheduler", "scheduler_config.json")
		if err := writeJSON(path, t.schedulerConfig()); err != nil {
			return err
		}
		if err := r.loadEncoders(); err != nil {
			return err
		}
		pipe := *r.pipe
		pipe.SchedulerConfig = path
		sm, err := sampling.NewSampler(r.backend, &pipe, t.exported(), nil, r.nnOpts)
		if err != nil {
			return err
		}
		t.sampler = sm
	}
	rows := make([][]*image.RGBA, len(s.Run.ValidationPrompts))
	for _, steps := range s.Run.ValidationInferenceSteps {
		res, err := t.sampler.Sample(sampling.SampleRequest{
			Prompts: s.Run.ValidationPrompts, Steps: steps, Guidance: s.Run.ValidationGuidance,
			Seed: uint64(s.Run.ValidationSeed), Width: s.Run.ValidationWidth, Height: s.Run.ValidationHeight,
			Scheduler: "ddim",
		})
		if err != nil {
			return fmt.Errorf("validation at step %d (DDIM, %d steps): %w", step, steps, err)
		}
		for i, img := range res.Images {
			rows[i] = append(rows[i], img)
		}
	}
	return sampling.SaveGrid(t.validationGrid(step), rows, s.Run.ValidationPrompts, s.Run.ValidationInferenceSteps)
}

// schedulerConfig is the exported pipeline's scheduler: diffusers'
// DDIMScheduler on the teacher's noise schedule, with the prediction type
// trained (the script registers --prediction_type into the scheduler it
// saves), without LCMScheduler's own keys.
func (t *diffusionTask) schedulerConfig() map[string]any {
	cfg := t.r.schedCfg
	cfg.ClassName = "DDIMScheduler"
	cfg.PredictionType = string(t.obj.PredictionType)
	var m map[string]any
	data, err := json.Marshal(cfg)
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err != nil {
		panic(fmt.Errorf("scheduler config: %w", err)) // plain data: cannot fail
	}
	delete(m, "original_inference_steps")
	delete(m, "timestep_scaling")
	m["_diffusers_version"] = "0.26.3"
	return m
}

// export writes a self-contained StableDiffusionPipeline folder: unet/
// (the EMA weights with use_ema), the frozen text encoder, tokenizer and
// VAE copied from the pipeline trained in, and a DDIMScheduler config.
func (t *diffusionTask) export() error {
	r := t.r
	out := r.spec.Run.OutputDir
	m := t.exported()
	if err := checkFinite(map[string]*nn.Weights{"unet": m.Weights}); err != nil {
		return fmt.Errorf("export: not writing %s: %w", out, err)
	}
	if err := m.Save(filepath.Join(out, "unet")); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := r.copyComponents(false); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(out, "scheduler", "scheduler_config.json"), t.schedulerConfig()); err != nil {
		return err
	}
	index := map[string]any{
		"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.26.3",
		"requires_safety_checker": false, "safety_checker": []any{nil, nil}, "feature_extractor": []any{nil, nil},
		"image_encoder": []any{nil, nil},
		"unet":          []string{"diffusers", "UNet2DConditionModel"}, "vae": []string{"diffusers", "AutoencoderKL"},
		"scheduler": []string{"diffusers", "DDIMScheduler"}, "text_encoder": []string{"transformers", "CLIPTextModel"},
		"tokenizer": []string{"transformers", "CLIPTokenizer"},
	}
	for _, name := range []string{"text_encoder", "tokenizer"} {
		if c, ok := r.pipe.Index.Components[name]; ok && c.Library != "" && c.Class != "" {
			index[name] = []string{c.Library, c.Class}
		}
	}
	if err := writeJSON(filepath.Join(out, "model_index.json"), index); err != nil {
		return err
	}
	r.result.Exported = append(r.result.Exported, filepath.Join(out, "unet"), filepath.Join(out, "model_index.json"))
	return nil
}

// scratchUNet is a freshly initialised UNet (PyTorch's default init) of the
// architecture named by config: a unet preset, a config.json path, or ""
// for like's. A preset gets the pipeline's latent channels.
func scratchUNet(config string, like *unet.Model, latentChannels int, seed uint64) (*unet.Model, error) {
	raw := like.RawConfig
	switch {
	case config == "":
	case slices.Contains(unet.PresetNames(), config):
		_, preset, err := unet.Preset(config)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(preset, &m); err != nil {
			return nil, fmt.Errorf("diffusion.unet_config: preset %s: %w", config, err)
		}
		m["_class_name"] = "UNet2DConditionModel"
		m["in_channels"], m["out_channels"] = latentChannels, latentChannels
		if raw, err = json.Marshal(m); err != nil {
			return nil, err
		}
	default:
		var err error
		if raw, err = os.ReadFile(config); err != nil {
			return nil, fmt.Errorf("diffusion.unet_config = %q is neither a preset (%v) nor a readable config.json: %w",
				config, unet.PresetNames(), err)
		}
	}
	where := "diffusion.unet_config " + config
	if config == "" {
		where = "the pipeline's unet/config.json"
	}
	cfg, err := unet.ParseConfig(raw, where)
	if err != nil {
		return nil, err
	}
	// The embedding std is CLIP's initializer_range, as the random pipelines use (UNets have none).
	w := nn.RandomWeights(cfg.ParamShapes(), seed^0x756e6574, 0.02)
	return &unet.Model{Config: cfg, Weights: w, RawConfig: raw}, nil
}
