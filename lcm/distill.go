package lcm

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/train"
)

// Mode is what the student is: a full UNet with a guidance embedding, or
// LoRA adapters on the teacher's UNet.
type Mode string

const (
	Full Mode = "full"
	LoRA Mode = "lora"
)

// DistillConfig fixes everything about the compiled step except the data.
type DistillConfig struct {
	Mode           Mode
	Teacher        *unet.Config // the teacher's architecture
	Student        *unet.Config // full mode: the teacher's plus time_cond_proj_dim; LoRA: the teacher's
	PredictionType PredictionType
	Loss           losses.Kind
	HuberC         float64
	MaxGradNorm    float64 // global-norm clipping; <= 0 disables
	Beta1, Beta2   float64 // AdamW
	AdamEps        float64
	WeightDecay    float64
	EMADecay       float64 // full mode: target ← μ·target + (1-μ)·student
	// AccumulationSteps is how many micro-batches' gradients are summed
	// (each divided by it, as accelerate divides the loss) before one
	// optimizer step; 0 and 1 mean every Step is an optimizer step.
	AccumulationSteps int
	NN                nn.Options
	// Precision, when set (BFloat16 or Float16), is the dtype the UNet
	// passes compute in, as the reference scripts' weight_dtype with
	// autocast: the teacher's weights (which the caller stores in it to
	// halve them), the student's and the target's (float32 master copies
	// read through nn.Params.Cast) and the UNets' inputs; products
	// accumulate in float32 (GoMLX's DotGeneral for half inputs), norms and
	// softmax run in float32 (package nn), and the UNet outputs, the
	// solver, the boundary scalings and the loss in float32. Zero is
	// float32 throughout.
	Precision dtypes.DType
	// LossScaling, when set, scales the loss dynamically (float16: see
	// train.LossScaling); bfloat16 has float32's range and needs none.
	LossScaling *train.LossScaling
	// Adapters binds the LoRA weight group to the UNet's adapter hook
	// (LoRA mode only; see package lora).
	Adapters func(lora *nn.Params) func(module string) nn.Adapter
	// DropoutAdapters, when set, binds the LoRA weights with lora_dropout
	// drawing from rng, and each step then takes Batch.DropoutSeed. Both
	// LoRA passes drop out, the student's and the target's, with their own
	// masks: the reference runs both through the PEFT model in train mode,
	// where dropout stays on under no_grad.
	DropoutAdapters func(lora *nn.Params, rng *lora.RNG) func(module string) nn.Adapter
	// Debug adds the step's intermediates and clipped gradients to the
	// result, for tests and inspection.
	Debug bool
}

// Distiller is the distillation task on the shared optimizer (package
// train): it supplies the weight groups, the named batch inputs and the
// loss graph; the trainer adds accumulation, clipping, AdamW and the EMA
// target.
type Distiller struct {
	*train.Trainer // Steps, AdamM, AdamV, GradAcc, Accumulating
	cfg            DistillConfig

	Teacher *nn.Weights // frozen teacher UNet (LoRA: the shared base UNet)
	Student *nn.Weights // trained: the student UNet, or the LoRA adapter weights (the trainer's Trained)
	Target  *nn.Weights // full mode: the EMA target UNet (the trainer's EMA); nil for LoRA
}

// Batch is one step's data: latents (already scaled VAE samples), the noise,
// the text conditioning, and the per-sample coefficients from Coefficients.
// TextEmbeds, UncondTextEmbeds and TimeIDs are SDXL's and nil for SD.
type Batch struct {
	Latents, Noise                        *tensors.Tensor
	PromptEmbeds, UncondEmbeds            *tensors.Tensor
	TextEmbeds, UncondTextEmbeds, TimeIDs *tensors.Tensor
	Coefs                                 *StepCoefficients
	LR                                    float64 // learning rate of this step (after the schedule)
	// DropoutSeed seeds this step's LoRA dropout masks (DistillConfig.DropoutAdapters).
	DropoutSeed int64
}

// StepResult reports one step.
type StepResult struct {
	Applied       bool // an optimizer step was taken (false on accumulating micro-batches)
	Loss          float32
	GradNorm      float32 // global gradient norm before clipping
	WeightsFinite bool    // every updated student (and target) weight is finite
	Skipped       bool    // loss scaling: the gradients overflowed, nothing but the scale changed
	// Debug (DistillConfig.Debug, optimizer steps) holds the intermediates,
	// named as the reference script's variables (noisy_model_input,
	// noise_pred, model_pred, cond_/uncond_teacher_output, pred_x0,
	// pred_noise, x_prev, target_noise_pred, target), and the clipped
	// gradients as grad.<weight name>.
	Debug map[string]*tensors.Tensor
}

// batchInput is one named input of the step: when it is fed, and where
// the Batch holds it. Adding a batch tensor is one line here and its
// in[name] in loss.
type batchInput struct {
	name string
	when func(d *Distiller) bool // nil: always
	get  func(b *Batch) *tensors.Tensor
}

var batchInputs = []batchInput{
	{"latents", nil, func(b *Batch) *tensors.Tensor { return b.Latents }},
	{"noise", nil, func(b *Batch) *tensors.Tensor { return b.Noise }},
	{"prompt_embeds", nil, func(b *Batch) *tensors.Tensor { return b.PromptEmbeds }},
	{"uncond_embeds", nil, func(b *Batch) *tensors.Tensor { return b.UncondEmbeds }},
	{"text_embeds", (*Distiller).sdxl, func(b *Batch) *tensors.Tensor { return b.TextEmbeds }},
	{"uncond_text_embeds", (*Distiller).sdxl, func(b *Batch) *tensors.Tensor { return b.UncondTextEmbeds }},
	{"time_ids", (*Distiller).sdxl, func(b *Batch) *tensors.Tensor { return b.TimeIDs }},
	{"start", nil, func(b *Batch) *tensors.Tensor { return ints(b.Coefs.Start) }},
	{"end", nil, func(b *Batch) *tensors.Tensor { return ints(b.Coefs.End) }},
	{"alpha_start", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.AlphaStart) }},
	{"sigma_start", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.SigmaStart) }},
	{"alpha_end", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.AlphaEnd) }},
	{"sigma_end", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.SigmaEnd) }},
	{"c_skip_start", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.CSkipStart) }},
	{"c_out_start", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.COutStart) }},
	{"c_skip_end", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.CSkipEnd) }},
	{"c_out_end", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.COutEnd) }},
	{"sqrt_alpha_prev", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.SqrtAlphaPrev) }},
	{"sqrt_sigma_prev", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.SqrtSigmaPrev) }},
	{"w", nil, func(b *Batch) *tensors.Tensor { return vec(b.Coefs.W) }},
	{"w_embedding", (*Distiller).embedsGuidance, func(b *Batch) *tensors.Tensor {
		return tensors.FromFlatDataAndDimensions(b.Coefs.WEmbedding, len(b.Coefs.W), len(b.Coefs.WEmbedding)/max(1, len(b.Coefs.W)))
	}},
	{"dropout_rng", (*Distiller).dropsOut, func(b *Batch) *tensors.Tensor {
		state, err := RNGStateFromSeed(b.DropoutSeed)
		if err != nil {
			panic(fmt.Errorf("dropout seed: %w", err)) // caught in stepInputs
		}
		return state
	}},
}

func vec(x []float32) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(x, len(x)) }
func ints(x []int64) *tensors.Tensor  { return tensors.FromFlatDataAndDimensions(x, len(x)) }

// inputs lists the batch inputs this distiller's step takes.
func (d *Distiller) inputs() []batchInput {
	var in []batchInput
	for _, bi := range batchInputs {
		if bi.when == nil || bi.when(d) {
			in = append(in, bi)
		}
	}
	return in
}

// NewDistiller sets up a run: target and optimizer state are created here
// (the target as an exact copy of the student). The distiller owns student
// from here on and updates it in place; teacher is only read.
func NewDistiller(b compute.Backend, cfg DistillConfig, teacher, student *nn.Weights) (*Distiller, error) {
	if cfg.Mode != Full && cfg.Mode != LoRA {
		return nil, fmt.Errorf("distill: mode %q is not one of full, lora", cfg.Mode)
	}
	if cfg.Mode == LoRA && cfg.Adapters == nil {
		return nil, fmt.Errorf("distill: LoRA mode needs an adapter binding")
	}
	d := &Distiller{cfg: cfg, Teacher: teacher, Student: student}
	var names []string
	for _, bi := range d.inputs() {
		names = append(names, bi.name)
	}
	var err error
	d.Trainer, err = train.New(b, train.Task{
		Frozen:  []train.Group{{Name: "teacher", Weights: teacher}},
		Trained: student,
		EMA:     cfg.Mode == Full,
		Inputs:  names,
		Loss:    d.loss,
		Optimizer: train.AdamW{
			Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.AdamEps, WeightDecay: cfg.WeightDecay,
			MaxGradNorm: cfg.MaxGradNorm, AccumulationSteps: cfg.AccumulationSteps, EMADecay: cfg.EMADecay,
		},
		NN:          cfg.NN,
		Gradients:   cfg.Debug,
		LossScaling: cfg.LossScaling,
	})
	if err != nil {
		return nil, err
	}
	d.Target = d.EMA
	return d, nil
}

// Config returns the step configuration.
func (d *Distiller) Config() DistillConfig { return d.cfg }

// Step runs the distillation step on one (micro-)batch. Every
// AccumulationSteps-th call applies the AdamW and EMA updates and reports
// Applied; the calls between only add their gradients up.
func (d *Distiller) Step(b *Batch) (*StepResult, error) {
	in, err := d.stepInputs(b)
	if err != nil {
		return nil, err
	}
	r, err := d.Trainer.Step(in, b.LR)
	if err != nil {
		return nil, fmt.Errorf("distillation step %d: %w", d.Steps+1, err)
	}
	res := &StepResult{Applied: r.Applied, Loss: r.Loss, GradNorm: r.GradNorm, WeightsFinite: r.WeightsFinite, Skipped: r.Skipped}
	if d.cfg.Debug && r.Applied {
		res.Debug = r.Outputs
	}
	return res, nil
}

// stepInputs checks a batch against the step's inputs and names its tensors.
func (d *Distiller) stepInputs(b *Batch) (map[string]*tensors.Tensor, error) {
	c := b.Coefs
	if b.Latents == nil || b.Noise == nil || b.PromptEmbeds == nil || b.UncondEmbeds == nil || c == nil {
		return nil, fmt.Errorf("distillation step: batch is missing latents, noise, embeddings or coefficients")
	}
	if sdxl := d.sdxl(); sdxl != (b.TextEmbeds != nil && b.UncondTextEmbeds != nil && b.TimeIDs != nil) {
		return nil, fmt.Errorf("distillation step: SDXL teacher=%v but text_embeds/time_ids given=%v", sdxl, b.TextEmbeds != nil)
	}
	if d.embedsGuidance() {
		if dim := *d.cfg.Student.TimeCondProjDim; len(c.WEmbedding) != len(c.W)*dim {
			return nil, fmt.Errorf("distillation step: w embedding has %d values, want %d×%d", len(c.WEmbedding), len(c.W), dim)
		}
	}
	in := map[string]*tensors.Tensor{}
	err := backend.Catch(func() {
		for _, bi := range d.inputs() {
			in[bi.name] = bi.get(b)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("distillation step: %w", err)
	}
	return in, nil
}

// sdxl reports whether the teacher takes SDXL's text embeddings and time ids.
func (d *Distiller) sdxl() bool { return d.cfg.Teacher.TextTime() }

// embedsGuidance reports whether the student is told w: full students with
// a time_cond_proj_dim are; LoRA students never are (the LoRA scripts pass
// no timestep_cond).
func (d *Distiller) embedsGuidance() bool {
	return d.cfg.Mode == Full && d.cfg.Student.TimeCondProjDim != nil
}

// dropsOut reports whether the LoRA adapters train with dropout.
func (d *Distiller) dropsOut() bool { return d.cfg.Mode == LoRA && d.cfg.DropoutAdapters != nil }

// loss is the step graph up to the loss; see REFERENCE-LCD §3 for each
// line's source. The Debug intermediates are its named outputs.
func (d *Distiller) loss(groups map[string]*nn.Params, in map[string]*Node) (*Node, map[string]*Node) {
	cfg := d.cfg
	teacherP, studentP := groups["teacher"], groups[train.TrainedGroup]
	latents, noise, prompt, uncond := in["latents"], in["noise"], in["prompt_embeds"], in["uncond_embeds"]
	textEmbeds, uncondText, timeIDs := in["text_embeds"], in["uncond_text_embeds"], in["time_ids"]
	wEmb, start, w := in["w_embedding"], in["start"], in["w"]
	aS, sS := in["alpha_start"], in["sigma_start"]

	// Under mixed precision every UNet reads its weights in cfg.Precision.
	teacherP, studentP = teacherP.Cast(cfg.Precision), studentP.Cast(cfg.Precision)
	// The student's view: its own UNet, or the teacher's with adapters.
	studentScope := studentP.Root("")
	if cfg.Mode == LoRA {
		adapters := cfg.Adapters(studentP)
		if rng := in["dropout_rng"]; rng != nil {
			adapters = cfg.DropoutAdapters(studentP, &lora.RNG{State: rng})
		}
		studentScope = teacherP.WithAdapters(adapters).Root("")
	}
	// The target: the EMA student (full), or the student itself without
	// gradients (LoRA); forward-only, as the teacher's pass (no gradient
	// lowerings, no weight copies).
	targetScope := studentScope.Params().ForwardOnly().Root("")
	if cfg.Mode == Full {
		targetScope = groups[train.EMAGroup].Cast(cfg.Precision).ForwardOnly().Root("")
	}
	low := func(x *Node) *Node { return castFloat(x, cfg.Precision) }
	// A UNet pass takes its inputs in cfg.Precision and returns its output
	// in the dtype the step computes the rest in.
	forward := func(scope nn.Scope, cfg *unet.Config, in unet.Inputs) *Node {
		dtype := in.Sample.DType()
		in.Sample, in.Context, in.TimestepCond = low(in.Sample), low(in.Context), low(in.TimestepCond)
		in.TextEmbeds = low(in.TextEmbeds) // time ids stay float32: the UNet embeds them in float32
		return castFloat(unet.Forward(scope, cfg, in), dtype)
	}
	denoiser := func(scope nn.Scope, emb *Node) Denoiser {
		return Denoiser{Prediction: cfg.PredictionType, Net: func(z, t *Node) *Node {
			return forward(scope, cfg.Student, unet.Inputs{
				Sample: z, Timesteps: t, Context: prompt, TimestepCond: emb, TextEmbeds: textEmbeds, TimeIDs: timeIDs})
		}}
	}

	// 1. Forward noising at the start timestep and the student's consistency output.
	z := GraphWeightedSum(aS, latents, sS, noise)
	modelPred, studentOut := denoiser(studentScope, wEmb).Consistency(z, start, aS, sS, in["c_skip_start"], in["c_out_start"])

	// 2. Teacher, conditional and unconditional in one batch, no gradients.
	B := z.Shape().Dimensions[0]
	cat := func(a, b *Node) *Node { return Concatenate([]*Node{a, b}, 0) }
	tin := unet.Inputs{Sample: cat(z, z), Timesteps: cat(start, start), Context: cat(prompt, uncond)}
	if textEmbeds != nil {
		tin.TextEmbeds, tin.TimeIDs = cat(textEmbeds, uncondText), cat(timeIDs, timeIDs)
	}
	teacherOut := StopGradient(forward(teacherP.ForwardOnly().Root(""), cfg.Teacher, tin))
	condOut := Slice(teacherOut, AxisRange(0, B))
	uncondOut := Slice(teacherOut, AxisRange(B, 2*B))
	x0c, epsC := GraphX0AndEps(condOut, z, aS, sS, cfg.PredictionType)
	x0u, epsU := GraphX0AndEps(uncondOut, z, aS, sS, cfg.PredictionType)
	predX0 := GraphGuidance(x0c, x0u, w)
	predEps := GraphGuidance(epsC, epsU, w)
	xPrev := GraphWeightedSum(in["sqrt_alpha_prev"], predX0, in["sqrt_sigma_prev"], predEps)

	// 3. Target network at the end timestep, no gradients.
	target, targetOut := denoiser(targetScope, wEmb).Consistency(xPrev, in["end"],
		in["alpha_end"], in["sigma_end"], in["c_skip_end"], in["c_out_end"])
	target = StopGradient(target)

	// 4. Loss; the trainer adds gradients, clipping, AdamW and the EMA.
	loss := losses.Loss(cfg.Loss, modelPred, target, cfg.HuberC)
	if !cfg.Debug {
		return loss, nil
	}
	return loss, map[string]*Node{
		"noisy_model_input": z, "noise_pred": studentOut, "model_pred": modelPred,
		"cond_teacher_output": condOut, "uncond_teacher_output": uncondOut,
		"pred_x0": predX0, "pred_noise": predEps, "x_prev": xPrev,
		"target_noise_pred": targetOut, "target": target,
	}
}

// castFloat converts a float node to dtype; nil nodes, other dtypes and the
// zero dtype pass.
func castFloat(x *Node, dtype dtypes.DType) *Node {
	if x == nil || dtype == dtypes.InvalidDType || !x.DType().IsFloat() || x.DType() == dtype {
		return x
	}
	return ConvertDType(x, dtype)
}
