// Package spec is golcm's experiment DSL: one typed Spec describes one training run (a distillation,
// a teacher's diffusion training or a VAE's: the task key, tasks.go), Default is
// the single source of defaults, and Load/Parse read a TOML file plus `-set section.key=value`
// overrides through the same strict decoding and Validate.
//
// Strict means: an unknown key is an error naming the file, line and closest valid key; a value of
// the wrong type or an impossible value is an error naming the key and the value; nothing is ignored.
// The defaults follow diffusers' train_lcm_distill_*_wds.py scripts for Stable Diffusion 1.x
// (REFERENCE-LCD.md §1), so a shipped experiment file only states what differs.
//
// The package depends on the standard library, github.com/pelletier/go-toml/v2 (parsing) and
// datasets (whose Config is the [data] section); it is imported by the experiments command and by
// notebooks.
package spec

import "github.com/golcm/golcm/datasets"

// VAEFactor is the spatial downsampling of Stable Diffusion's VAE: image sizes must be multiples of it.
const VAEFactor = 8

// LoRAFormats are the names lora.formats takes: lora.Format's names (the runner parses them with
// lora.ParseFormat).
var LoRAFormats = []string{"diffusers", "kohya", "diffusers-old"}

// TrainTimesteps is the teacher's num_train_timesteps (1000 for every SD 1.x/2.x/XL scheduler);
// distill.num_ddim_timesteps must divide it.
const TrainTimesteps = 1000

// Spec is one experiment: what to train (the task), from which data, how, and where the results go.
// The TOML sections are named by the toml tags.
type Spec struct {
	// Task is what the run trains: "lcd" (latent consistency distillation of the teacher, the
	// [distill] and [lora] sections), "diffusion" (the UNet on the noise-prediction objective of
	// diffusers' train_text_to_image.py, the [diffusion] section) or "vae" (the AutoencoderKL on
	// reconstruction plus KL, the [vae] section). The keys of another task's section are refused,
	// and so are model.init_tiny outside "lcd", and data.fix_crop_and_size and the prompt
	// validation keys (run.validation_prompts ...) in "vae". Default "lcd".
	Task      string        `toml:"task"`
	Model     ModelSpec     `toml:"model"`
	Distill   DistillSpec   `toml:"distill"`
	LoRA      LoRASpec      `toml:"lora"`
	Diffusion DiffusionSpec `toml:"diffusion"`
	VAE       VAESpec       `toml:"vae"`
	Data      DataSpec      `toml:"data"`
	Optim     OptimSpec     `toml:"optim"`
	Run       RunSpec       `toml:"run"`
	Eval      EvalSpec      `toml:"eval"`
}

// DiffusionSpec is the teacher training of task = "diffusion" (diffusers' train_text_to_image.py):
// a uniform random timestep, noisy = sqrt(ac) x0 + sqrt(1-ac) eps, the UNet regressed onto eps or v.
// The text encoder and the VAE stay frozen.
type DiffusionSpec struct {
	// PredictionType is the UNet's target: "epsilon", "v_prediction", or "" for the teacher
	// scheduler's prediction_type (the script's default); the exported scheduler states the one
	// trained. Default "".
	PredictionType string `toml:"prediction_type"`
	// SNRGamma is gamma of Min-SNR loss weighting, min(snr, gamma)/snr for epsilon and
	// min(snr, gamma)/(snr+1) for v targets (the script's --snr_gamma); 0 is the plain MSE. Default 0.
	SNRGamma float64 `toml:"snr_gamma"`
	// NoiseOffset adds noise_offset times N(0, 1) per sample and channel to the noise ("offset
	// noise", --noise_offset); 0 is off. Default 0.
	NoiseOffset float64 `toml:"noise_offset"`
	// InputPerturbation noises the input with noise + p N(0, 1) while the target keeps the plain
	// noise (--input_perturbation); 0 is off. Default 0.
	InputPerturbation float64 `toml:"input_perturbation"`
	// ProportionEmptyPrompts is the fraction of captions replaced by the empty prompt, so that the
	// UNet learns the unconditional prediction classifier-free guidance needs
	// (--proportion_empty_prompts). Default 0.
	ProportionEmptyPrompts float64 `toml:"proportion_empty_prompts"`
	// UseEMA keeps an exponential moving average of the UNet's weights (--use_ema), exported as unet/
	// as the script saves it. Default false.
	UseEMA bool `toml:"use_ema"`
	// EMADecay is EMAModel's decay, the largest the schedule reaches. Default 0.9999.
	EMADecay float64 `toml:"ema_decay"`
	// EMAMinDecay is EMAModel's min_decay. Default 0.
	EMAMinDecay float64 `toml:"ema_min_decay"`
	// EMAUpdateAfterStep is EMAModel's update_after_step: the average copies the weights until
	// then. Default 0.
	EMAUpdateAfterStep int `toml:"ema_update_after_step"`
	// EMAUseWarmup ramps the decay as 1 - (1 + step/ema_inv_gamma)^-ema_power (EMAModel's
	// use_ema_warmup); without it the decay is ema_decay from the second step on, as in current
	// diffusers. Default false.
	EMAUseWarmup bool `toml:"ema_use_warmup"`
	// EMAInvGamma is the warmup's inv_gamma. Default 1.
	EMAInvGamma float64 `toml:"ema_inv_gamma"`
	// EMAPower is the warmup's power. Default 0.6666666666666666.
	EMAPower float64 `toml:"ema_power"`
	// FromScratch trains a UNet with freshly initialised weights (PyTorch's default init, from
	// run.seed) instead of fine-tuning model.path's unet/. Default false.
	FromScratch bool `toml:"from_scratch"`
	// UNetConfig is the architecture of a from-scratch UNet: a preset name (golcm's unet presets,
	// e.g. fashion or tiny) or the path of a diffusers UNet config.json; "" uses model.path's
	// unet/config.json. from_scratch only. Default "".
	UNetConfig string `toml:"unet_config"`
}

// VAESpec is the autoencoder training of task = "vae": AutoencoderKL on an L1 or L2 pixel
// reconstruction loss plus kl_weight times the posterior's KL divergence (diffusers'
// train_autoencoderkl.py without its LPIPS and adversarial terms).
type VAESpec struct {
	// Reconstruction is the pixel loss, "l1" or "l2" (mean absolute or mean squared error).
	// Default "l2".
	Reconstruction string `toml:"reconstruction"`
	// KLWeight scales the KL term (the script's --kl_scale). Default 1e-06.
	KLWeight float64 `toml:"kl_weight"`
	// FromScratch trains freshly initialised weights (PyTorch's default init, from run.seed) of
	// model.path's VAE architecture instead of fine-tuning its weights. Default false.
	FromScratch bool `toml:"from_scratch"`
	// ValidationSources are the shards or folders of the images validation reconstructs (read
	// with the [data] settings), e.g. a test split; [] uses the first images of data.sources.
	// Default [].
	ValidationSources []string `toml:"validation_sources"`
	// ValidationImages is how many validation images the reconstruction PSNR is the mean over.
	// Default 256.
	ValidationImages int `toml:"validation_images"`
	// GridImages is how many of them the input/reconstruction grid shows. Default 8.
	GridImages int `toml:"grid_images"`
	// ScalingImages is how many training images the export encodes to measure the latents' std:
	// the exported config's scaling_factor is 1/std, diffusers' convention. Default 2048.
	ScalingImages int `toml:"scaling_images"`
}

// ModelSpec is the teacher: a diffusers pipeline folder (model_index.json with unet/, vae/,
// text_encoder*/, tokenizer*/, scheduler/) or a Hugging Face hub id found in the HF cache.
type ModelSpec struct {
	// Path is the teacher's local folder or hub id; an existing local folder wins over a hub id.
	// Default "runwayml/stable-diffusion-v1-5".
	Path string `toml:"path"`
	// Revision is the hub branch, tag or commit for every teacher component; "" is the default
	// branch. Hub ids only. Default "".
	Revision string `toml:"revision"`
	// Variant picks weight files like diffusion_pytorch_model.<variant>.safetensors, e.g. "fp16";
	// "" loads the plain files. Default "".
	Variant string `toml:"variant"`
	// VAE is a folder or hub id of a replacement VAE, read from its root (no vae/ subfolder), e.g.
	// "madebyollin/sdxl-vae-fp16-fix" for fp16 SDXL; "" uses the teacher's vae/. Unlike diffusers'
	// SD scripts, which never load it, golcm uses it for every teacher. Default "".
	VAE string `toml:"vae"`
	// InitTiny makes the runner create a tiny random SD teacher at Path when Path does not exist,
	// for smoke tests and CI; an existing folder is loaded as is. Default false.
	InitTiny bool `toml:"init_tiny"`
}

// DistillSpec is the latent consistency distillation method (REFERENCE-LCD.md §1.2, §3).
type DistillSpec struct {
	// Mode is "full" (a whole student UNet with a guidance embedding and an EMA target, as
	// train_lcm_distill_sd_wds.py) or "lora" (a LoRA on the teacher's UNet, the student itself as
	// target, as train_lcm_distill_lora_sd_wds.py). Default "full".
	Mode string `toml:"mode"`
	// WMin is the lower bound of the guidance scale w ~ U[w_min, w_max] used by the teacher's CFG in
	// the LCM form x0 = x0_c + w (x0_c - x0_u) and embedded for a full student. Default 5 (the SD
	// scripts; the SDXL scripts use 3).
	WMin float64 `toml:"w_min"`
	// WMax is the upper bound of the sampled guidance scale. Default 15.
	WMax float64 `toml:"w_max"`
	// NumDDIMTimesteps is N, the number of DDIM solver steps: the solver skips k = 1000/N
	// timesteps, so N must divide 1000. Samplers must use it as original_inference_steps. Default 50.
	NumDDIMTimesteps int `toml:"num_ddim_timesteps"`
	// Loss is "l2" (mean squared error) or "huber" (pseudo-Huber sqrt((a-b)^2 + c^2) - c, averaged).
	// Default "l2".
	Loss string `toml:"loss"`
	// HuberC is c of the pseudo-Huber loss; used when loss = "huber". Default 0.001.
	HuberC float64 `toml:"huber_c"`
	// TimestepScalingFactor is s in the boundary scalings c_skip = 0.25/((s t)^2 + 0.25) and
	// c_out = s t / sqrt((s t)^2 + 0.25). Default 10.
	TimestepScalingFactor float64 `toml:"timestep_scaling_factor"`
	// EMADecay is mu of the target network's update target = mu target + (1-mu) student after each
	// optimizer step; full mode only (the LoRA target is the student itself). Default 0.95.
	EMADecay float64 `toml:"ema_decay"`
	// TimeCondProjDim is the width of the guidance-scale embedding the full student gets
	// (time_embedding.cond_proj) when the teacher UNet has no time_cond_proj_dim of its own; a
	// teacher's own value wins. Full mode only. Default 256.
	TimeCondProjDim int `toml:"time_cond_proj_dim"`
}

// LoRASpec is the adapter trained in lora mode (PEFT LoraConfig, REFERENCE-LCD.md §4.2); full mode
// does not use it.
type LoRASpec struct {
	// Rank is r, the inner width of each adapter (A: r x in, B: out x r, B zero-initialised).
	// Default 64.
	Rank int `toml:"rank"`
	// Alpha scales the adapter output by alpha/rank. Default 64.
	Alpha float64 `toml:"alpha"`
	// Dropout is the probability of dropping adapter inputs while training (PEFT's lora_dropout),
	// in the student and the target pass alike, as the reference's train-mode model does; the masks
	// come from the run's seed, so a resumed run draws the same ones. Default 0.
	Dropout float64 `toml:"dropout"`
	// Targets are module-name suffixes of the UNet that get an adapter (a module matches when its
	// full name equals a target or ends with "."+target). Default: the LCM-LoRA list, every
	// attention, transformer in/out, feed-forward, resnet conv, shortcut, resample conv and resnet
	// time projection: to_q to_k to_v to_out.0 proj_in proj_out ff.net.0.proj ff.net.2 conv1 conv2
	// conv_shortcut downsamplers.0.conv upsamplers.0.conv time_emb_proj.
	Targets []string `toml:"targets"`
	// Formats are the LoRA files a run exports, one per entry: "diffusers" (pytorch_lora_weights.safetensors,
	// what diffusers' load_lora_weights and golcm's sample -lora read), "kohya" (kohya-ss / A1111 /
	// ComfyUI names with per-module alphas, pytorch_lora_weights_kohya.safetensors) and
	// "diffusers-old" (diffusers' pre-PEFT names). `go run ./experiments lora convert` converts a
	// file later. Default ["diffusers"].
	Formats []string `toml:"formats"`
}

// DataSpec is where training images and captions come from and how they become batches
// (REFERENCE-LCD.md §7.1, §7.2): the datasets package's Config (its keys, comments and defaults are
// in datasets/config.go) plus the keys that are about distillation rather than the data pipeline.
type DataSpec struct {
	datasets.Config
	// Generate is the number of synthetic image/caption pairs to train on instead of sources; it
	// needs sources = []. 0 generates none. Default 0.
	Generate int `toml:"generate"`
	// FixCropAndSize makes an SDXL teacher's micro-conditioning use original_size = (res, res) and
	// crop = (0, 0), as --use_fix_crop_and_size; SD 1.x/2.x teachers have no micro-conditioning.
	// Default false.
	FixCropAndSize bool `toml:"fix_crop_and_size"`
	// VAEEncodeBatchSize is the chunk size for encoding images to latents. Default 32 (the SDXL
	// scripts use 8).
	VAEEncodeBatchSize int `toml:"vae_encode_batch_size"`
	// Cache is a folder written by `go run ./experiments data cache` holding each sample's VAE
	// latent distribution and prompt embeddings (SDXL: pooled embeddings and time ids too): training
	// reads them instead of images, without loading the VAE or the text encoders (validation loads
	// them when it first runs), and still draws latent = mean + std·ε every step. It must have been
	// made with this run's models and data keys (a cache made otherwise is refused, naming each
	// difference); it needs center_crop = true (it holds one crop per sample), and with random_flip
	// it holds both flips. Tasks lcd and diffusion. Default "" (read images).
	Cache string `toml:"cache"`
}

// OptimSpec is AdamW with decoupled weight decay, gradient clipping and a diffusers learning-rate
// schedule (REFERENCE-LCD.md §1.4, §3.2).
type OptimSpec struct {
	// LR is the base learning rate. Default 0.0001.
	LR float64 `toml:"lr"`
	// Beta1 is AdamW's first-moment decay. Default 0.9.
	Beta1 float64 `toml:"beta1"`
	// Beta2 is AdamW's second-moment decay. Default 0.999.
	Beta2 float64 `toml:"beta2"`
	// WeightDecay is the decoupled decay p -= lr*wd*p (the README recipes use 0). Default 0.01.
	WeightDecay float64 `toml:"weight_decay"`
	// Eps is AdamW's denominator epsilon. Default 1e-08.
	Eps float64 `toml:"eps"`
	// MaxGradNorm clips the global L2 norm of the gradients; 0 does not clip. Default 1.0.
	MaxGradNorm float64 `toml:"max_grad_norm"`
	// Schedule is the learning-rate multiplier: "constant", "constant_with_warmup", "linear"
	// (warmup, then down to 0 at max_train_steps) or "cosine" (warmup, then half a cosine to 0).
	// Default "constant".
	Schedule string `toml:"schedule"`
	// WarmupSteps is the linear warmup length in optimizer steps; "constant" has no warmup (as
	// diffusers), the other schedules use it. Default 500.
	WarmupSteps int `toml:"warmup_steps"`
	// MaxTrainSteps is the number of optimizer steps to train. Default 1000.
	MaxTrainSteps int `toml:"max_train_steps"`
	// GradientAccumulationSteps is the number of micro-batches per optimizer step. Default 1.
	GradientAccumulationSteps int `toml:"gradient_accumulation_steps"`
}

// RunSpec is everything about one run that is not the method: outputs, checkpoints, validation,
// logging and the compute backend.
type RunSpec struct {
	// OutputDir receives config.toml, metrics.jsonl, checkpoints/, validation/ samples and the final
	// weights. Default "runs/lcm".
	OutputDir string `toml:"output_dir"`
	// Seed seeds data order, noise and initialisation. Default 0.
	Seed int64 `toml:"seed"`
	// CheckpointEvery writes output_dir/checkpoints/step-<step> every N optimizer steps; the last
	// step (and an interrupted run) is always checkpointed, so 0 writes only that final checkpoint.
	// Default 500.
	CheckpointEvery int `toml:"checkpoint_every"`
	// CheckpointsKeep is how many checkpoints to keep, deleting the oldest; 0 keeps all. Default 0.
	CheckpointsKeep int `toml:"checkpoints_keep"`
	// Resume is "" (start fresh), "latest" (the newest output_dir/checkpoints/step-<step>, or fresh
	// when there is none, as diffusers) or the path of a checkpoint folder. Default "".
	Resume string `toml:"resume"`
	// Overwrite lets a fresh run (resume = "") start in an output_dir that holds another run's
	// checkpoints or exports: they, its metrics.jsonl, validation grids and evaluations are deleted
	// once the new run has loaded its models. Without it such a run is refused. Default false.
	Overwrite bool `toml:"overwrite"`
	// AllowChanges are keys whose value may differ from the checkpoint's when resuming, e.g.
	// ["optim.lr"]. A resume compares the resolved experiment with the one saved in the checkpoint
	// and refuses changes to anything that alters training (task, model, data, distill, lora,
	// diffusion, vae, optim, seed) unless listed here; reporting and validation keys (and vae.*'s
	// validation and scaling images), optim.max_train_steps, data.workers, data.vae_encode_batch_size,
	// data.cache, run.backend and run.gradient_checkpointing may always change. Default [].
	AllowChanges []string `toml:"allow_changes"`
	// ValidationEvery samples the validation prompts every N optimizer steps; 0 turns validation
	// off. Default 200.
	ValidationEvery int `toml:"validation_every"`
	// ValidationPrompts are the prompts sampled at each validation. Default: the four prompts of
	// diffusers' WebDataset scripts (a portrait photo, a cyborg oil painting, an astronaut in a
	// jungle, a mountain lake at sunset).
	ValidationPrompts []string `toml:"validation_prompts"`
	// ValidationInferenceSteps are the LCM sampler step counts (num_inference_steps) tried at each
	// validation, each between 1 and num_ddim_timesteps; for task = "diffusion" the DDIM step
	// counts, 1 to 1000. Default [4].
	ValidationInferenceSteps []int `toml:"validation_inference_steps"`
	// ValidationGuidance is the pipeline guidance_scale, with diffusers' StableDiffusionPipeline
	// meaning: a full student (guidance embedding) gets w = guidance - 1 embedded and no CFG; a LoRA
	// student gets classifier-free guidance when guidance > 1 (the LoRA scripts use 1 for SD, 0 for
	// SDXL); task = "diffusion" samples with classifier-free guidance at this scale. Default 7.5
	// (the SD pipeline's; SDXL's is 5).
	ValidationGuidance float64 `toml:"validation_guidance"`
	// ValidationSeed seeds the validation noise, so every validation of a run is comparable.
	// Default 0.
	ValidationSeed int64 `toml:"validation_seed"`
	// ValidationWidth is the sample width in pixels, a multiple of 8; 0 uses the teacher's native
	// size (UNet sample_size times the VAE factor). Default 0.
	ValidationWidth int `toml:"validation_width"`
	// ValidationHeight is the sample height in pixels, a multiple of 8; 0 uses the teacher's native
	// size. Default 0.
	ValidationHeight int `toml:"validation_height"`
	// EvalEvery runs the eval command's evaluation (the [eval] section) on the student every N
	// optimizer steps and after the last one, and logs its metrics to metrics.jsonl; 0 turns it
	// off. Task "lcd" only. Default 0.
	EvalEvery int `toml:"eval_every"`
	// LogEvery appends a line to output_dir/metrics.jsonl every N optimizer steps. Default 10.
	LogEvery int `toml:"log_every"`
	// Backend is the GoMLX backend configuration, "go" or "xla" with an optional ":config" (e.g.
	// "xla:cuda", or "go:ops_sequential" for less peak memory on the pure-Go backend); "" uses
	// $GOMLX_BACKEND, else XLA when a PJRT plugin is installed, else the pure-Go backend. Default "".
	Backend string `toml:"backend"`
	// MixedPrecision is the dtype the frozen networks (teacher UNet, VAE, text encoders, the LoRA
	// base UNet) are stored and run in and the UNet passes compute in, as the reference scripts'
	// --mixed_precision: "no" (float32), "bf16" or "fp16". Trained weights, AdamW state and the EMA
	// target stay float32; products accumulate and norms, softmax and the loss run in float32. An
	// SDXL VAE stays float32 unless model.vae names another VAE (the fp16-fix one). fp16 scales the
	// loss dynamically (loss_scale_init, loss_scale_growth_interval). Default "no".
	MixedPrecision string `toml:"mixed_precision"`
	// LossScaleInit is fp16's initial loss scale (torch GradScaler's init_scale); a step whose
	// gradients overflow is skipped and halves it. Default 65536.
	LossScaleInit float64 `toml:"loss_scale_init"`
	// LossScaleGrowthInterval doubles fp16's loss scale after this many steps in a row without an
	// overflow (GradScaler's growth_interval). Default 2000.
	LossScaleGrowthInterval int `toml:"loss_scale_growth_interval"`
	// GradientCheckpointing recomputes the student's activations in the backward pass to save
	// memory. Default false.
	GradientCheckpointing bool `toml:"gradient_checkpointing"`
}

// EvalSpec is the evaluation run.eval_every runs during distillation: the eval command's
// (evaluation.Config, the same key names) with the in-memory student as its only candidate, the
// teacher (model.path) with DDIM and CFG as its reference, sampled on distill.num_ddim_timesteps's
// grid. Its output goes to output_dir/eval/step-<step>/ (eval.json, grid.png, samples/), its
// metrics to metrics.jsonl. Keep the sample counts small: it runs inside training.
type EvalSpec struct {
	// ReferenceSteps is the teacher's DDIM step count of the reference sample the student's are
	// compared with, sample by sample (latent RMSE, pixel PSNR). Default 50.
	ReferenceSteps int `toml:"reference_steps"`
	// TeacherGuidance is the teacher's classifier-free guidance scale. Default 7.5 (the eval
	// command's, StableDiffusionPipeline's).
	TeacherGuidance float64 `toml:"teacher_guidance"`
	// StudentSteps are the student's LCM step counts, each between 1 and num_ddim_timesteps.
	// Default [4].
	StudentSteps []int `toml:"student_steps"`
	// StudentGuidance is the guidance of a full student (distill.mode = "full"), which embeds
	// w = guidance - 1. Default 8.5 (the eval command's, LatentConsistencyModelPipeline's).
	StudentGuidance float64 `toml:"student_guidance"`
	// LoRAGuidance is the guidance of a LoRA student; above 1 it samples with classifier-free
	// guidance. Default 1 (the eval command's).
	LoRAGuidance float64 `toml:"lora_guidance"`
	// Prompts are the prompts sampled; empty: one per class of the classifier, captioned as golcm's
	// data convert captions an IDX data set ("a photo of a trouser"), or without a classifier
	// run.validation_prompts. Default [].
	Prompts []string `toml:"prompts"`
	// SamplesPerPrompt is the number of samples of each prompt, each from its own initial noise,
	// the same at every evaluation. Default 1.
	SamplesPerPrompt int `toml:"samples_per_prompt"`
	// Seed seeds the initial noise and the LCM steps' noise. Default 0.
	Seed int64 `toml:"seed"`
	// BatchSize is the number of images sampled per call. Default 8.
	BatchSize int `toml:"batch_size"`
	// Classifier is a models/classifier folder (the classifier command's output); with it the
	// metrics include the prompt accuracy, and with real_images the Fréchet distance. Default "".
	Classifier string `toml:"classifier"`
	// RealImages is an IDX file of the real images the Fréchet distance is measured to (needs
	// classifier). Default "".
	RealImages string `toml:"real_images"`
	// RealLabels is the IDX file of their labels; "" replaces images-idx3 by labels-idx1 in
	// real_images. Default "".
	RealLabels string `toml:"real_labels"`
	// RealLimit > 0 uses only the first RealLimit real images; 0 uses all. Default 0.
	RealLimit int `toml:"real_limit"`
}

// Default returns the spec every experiment file starts from: diffusers' SD 1.x LCD defaults.
func Default() Spec {
	return Spec{
		Task: "lcd",
		Diffusion: DiffusionSpec{
			EMADecay: 0.9999, EMAInvGamma: 1, EMAPower: 2.0 / 3,
		},
		VAE: VAESpec{
			Reconstruction: "l2", KLWeight: 1e-6, ValidationImages: 256, GridImages: 8, ScalingImages: 2048,
		},
		Model: ModelSpec{
			Path: "runwayml/stable-diffusion-v1-5",
		},
		Distill: DistillSpec{
			Mode:                  "full",
			WMin:                  5,
			WMax:                  15,
			NumDDIMTimesteps:      50,
			Loss:                  "l2",
			HuberC:                0.001,
			TimestepScalingFactor: 10,
			EMADecay:              0.95,
			TimeCondProjDim:       256,
		},
		LoRA: LoRASpec{
			Rank:    64,
			Alpha:   64,
			Dropout: 0,
			Targets: []string{
				"to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",
				"conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj",
			},
			Formats: []string{"diffusers"},
		},
		Data: DataSpec{
			Config:             datasets.DefaultConfig(),
			VAEEncodeBatchSize: 32,
		},
		Optim: OptimSpec{
			LR:                        1e-4,
			Beta1:                     0.9,
			Beta2:                     0.999,
			WeightDecay:               1e-2,
			Eps:                       1e-8,
			MaxGradNorm:               1,
			Schedule:                  "constant",
			WarmupSteps:               500,
			MaxTrainSteps:             1000,
			GradientAccumulationSteps: 1,
		},
		Run: RunSpec{
			OutputDir:       "runs/lcm",
			CheckpointEvery: 500,
			ValidationEvery: 200,
			ValidationPrompts: []string{
				"portrait photo of a girl, photograph, highly detailed face, depth of field, moody light, golden hour, style by Dan Winters, Russell James, Steve McCurry, centered, extremely detailed, Nikon D850, award winning photography",
				"Self-portrait oil painting, a beautiful cyborg with golden hair, 8k",
				"Astronaut in a jungle, cold color palette, muted colors, detailed, 8k",
				"A photo of beautiful mountain with realistic sunset and blue lake, highly detailed, masterpiece",
			},
			ValidationInferenceSteps: []int{4},
			ValidationGuidance:       7.5,
			LogEvery:                 10,
			MixedPrecision:           "no",
			LossScaleInit:            65536,
			LossScaleGrowthInterval:  2000,
		},
		Eval: EvalSpec{
			ReferenceSteps: 50, TeacherGuidance: 7.5, StudentSteps: []int{4}, StudentGuidance: 8.5, LoRAGuidance: 1,
			SamplesPerPrompt: 1, BatchSize: 8,
		},
	}
}
