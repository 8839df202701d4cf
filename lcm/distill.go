package lcm

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
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

// Distiller holds the weights and optimizer state of a distillation run and
// the compiled step that updates them.
type Distiller struct {
	cfg     DistillConfig
	backend compute.Backend
	prog    *nn.Program

	Teacher *nn.Weights // frozen teacher UNet (LoRA: the shared base UNet)
	Student *nn.Weights // trained: the student UNet, or the LoRA adapter weights
	Target  *nn.Weights // full mode: the EMA target UNet; nil for LoRA
	AdamM   *nn.Weights // AdamW first moments, named like Student
	AdamV   *nn.Weights // AdamW second moments
	GradAcc *nn.Weights // gradients summed over the micro-batches of the current step (accumulation only)
	Steps   int         // optimizer steps taken
	micro   int         // micro-batches accumulated towards the next step
	accum   *nn.Program // the micro-batch program (accumulation only)
}

// groupLayout says where each weight group sits in a program's groups; -1
// is absent.
type groupLayout struct{ teacher, student, m, v, target, acc int }

// programGroups lists the weight groups of the optimizer-step program
// (final) or of the gradient-accumulating micro-batch program.
func (d *Distiller) programGroups(final bool) ([]*nn.Weights, groupLayout) {
	l := groupLayout{teacher: 0, student: 1, m: -1, v: -1, target: -1, acc: -1}
	groups := []*nn.Weights{d.Teacher, d.Student}
	add := func(w *nn.Weights) int { groups = append(groups, w); return len(groups) - 1 }
	if final {
		l.m, l.v = add(d.AdamM), add(d.AdamV)
	}
	if d.Target != nil {
		l.target = add(d.Target)
	}
	if d.GradAcc != nil {
		l.acc = add(d.GradAcc)
	}
	return groups, l
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
	Applied  bool // an optimizer step was taken (false on accumulating micro-batches)
	Loss     float32
	GradNorm float32 // global gradient norm before clipping
	Debug    map[string]*tensors.Tensor
}

// DebugNames are the intermediates a Debug step returns, named as the
// reference script's variables.
var DebugNames = []string{
	"noisy_model_input", "noise_pred", "model_pred", "cond_teacher_output", "uncond_teacher_output",
	"pred_x0", "pred_noise", "x_prev", "target_noise_pred", "target",
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
	d := &Distiller{cfg: cfg, backend: b, Teacher: teacher, Student: student}
	var err error
	if cfg.Mode == Full {
		if d.Target, err = student.Clone(); err != nil {
			return nil, err
		}
	}
	d.AdamM, d.AdamV = zerosLike(student), zerosLike(student)
	if cfg.AccumulationSteps > 1 {
		d.GradAcc = zerosLike(student)
		groups, layout := d.programGroups(false)
		if d.accum, err = nn.Compile(b, groups, cfg.NN, d.builder(layout, false)); err != nil {
			return nil, err
		}
		d.accum.Donate(layout.acc)
	}
	groups, layout := d.programGroups(true)
	if d.prog, err = nn.Compile(b, groups, cfg.NN, d.builder(layout, true)); err != nil {
		return nil, err
	}
	// Step replaces these groups with the step's outputs: donated, the step
	// holds one copy of each, not the old and the new.
	d.prog.Donate(layout.student, layout.m, layout.v, layout.target, layout.acc)
	return d, nil
}

func zerosLike(w *nn.Weights) *nn.Weights {
	z := nn.NewWeights()
	for _, name := range w.Names() {
		t, _ := w.Get(name)
		z.SetFloat32(name, make([]float32, t.Size()), t.Shape().Dimensions...)
	}
	return z
}

// Config returns the step configuration.
func (d *Distiller) Config() DistillConfig { return d.cfg }

// Accumulating reports whether some micro-batches of the next optimizer
// step have been seen: a checkpoint taken now would lose them.
func (d *Distiller) Accumulating() bool { return d.micro > 0 }

// Step runs the distillation step on one (micro-)batch. Every
// AccumulationSteps-th call applies the AdamW and EMA updates and reports
// Applied; the calls between only add their gradients up.
func (d *Distiller) Step(b *Batch) (*StepResult, error) {
	final := d.accum == nil || d.micro+1 == d.cfg.AccumulationSteps
	inputs, err := d.stepInputs(b, final)
	if err != nil {
		return nil, err
	}
	prog := d.prog
	if !final {
		prog = d.accum
	}
	outs, err := prog.Run(inputs...)
	if err != nil {
		return nil, fmt.Errorf("distillation step %d: %w", d.Steps+1, err)
	}
	if !final {
		d.micro++
		for i, name := range d.GradAcc.Names() {
			d.GradAcc.Set(name, outs[1+i])
		}
		return &StepResult{Loss: tensors.ToScalar[float32](outs[0])}, nil
	}
	res := &StepResult{Applied: true,
		Loss:     tensors.ToScalar[float32](outs[0]),
		GradNorm: tensors.ToScalar[float32](outs[1]),
	}
	outs = outs[2:]
	if d.cfg.Debug {
		res.Debug = map[string]*tensors.Tensor{}
		for i, name := range DebugNames {
			res.Debug[name] = outs[i]
		}
		outs = outs[len(DebugNames):]
		for i, name := range d.Student.Names() {
			res.Debug["grad."+name] = outs[i]
		}
		outs = outs[d.Student.Len():]
	}
	names := d.Student.Names()
	for _, w := range []*nn.Weights{d.Student, d.AdamM, d.AdamV, d.Target} {
		if w == nil {
			continue
		}
		for _, name := range names {
			w.Set(name, outs[0])
			outs = outs[1:]
		}
	}
	if d.GradAcc != nil {
		d.GradAcc = zerosLikeInto(d.GradAcc)
	}
	d.micro = 0
	d.Steps++
	return res, nil
}

// zerosLikeInto zeroes w in place (the compiled programs keep w).
func zerosLikeInto(w *nn.Weights) *nn.Weights {
	for _, name := range w.Names() {
		t, _ := w.Get(name)
		w.SetFloat32(name, make([]float32, t.Size()), t.Shape().Dimensions...)
	}
	return w
}

func vec(x []float32) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(x, len(x)) }

func (d *Distiller) stepInputs(b *Batch, final bool) ([]*tensors.Tensor, error) {
	c := b.Coefs
	if b.Latents == nil || b.Noise == nil || b.PromptEmbeds == nil || b.UncondEmbeds == nil || c == nil {
		return nil, fmt.Errorf("distillation step: batch is missing latents, noise, embeddings or coefficients")
	}
	sdxl := d.cfg.Teacher.TextTime()
	if sdxl != (b.TextEmbeds != nil && b.UncondTextEmbeds != nil && b.TimeIDs != nil) {
		return nil, fmt.Errorf("distillation step: SDXL teacher=%v but text_embeds/time_ids given=%v", sdxl, b.TextEmbeds != nil)
	}
	in := []*tensors.Tensor{b.Latents, b.Noise, b.PromptEmbeds, b.UncondEmbeds}
	if sdxl {
		in = append(in, b.TextEmbeds, b.UncondTextEmbeds, b.TimeIDs)
	}
	in = append(in, tensors.FromFlatDataAndDimensions(c.Start, len(c.Start)),
		tensors.FromFlatDataAndDimensions(c.End, len(c.End)))
	for _, v := range [][]float32{c.AlphaStart, c.SigmaStart, c.AlphaEnd, c.SigmaEnd, c.CSkipStart, c.COutStart,
		c.CSkipEnd, c.COutEnd, c.SqrtAlphaPrev, c.SqrtSigmaPrev, c.W} {
		in = append(in, vec(v))
	}
	if d.embedsGuidance() {
		dim := *d.cfg.Student.TimeCondProjDim
		if len(c.WEmbedding) != len(c.W)*dim {
			return nil, fmt.Errorf("distillation step: w embedding has %d values, want %d×%d", len(c.WEmbedding), len(c.W), dim)
		}
		in = append(in, tensors.FromFlatDataAndDimensions(c.WEmbedding, len(c.W), dim))
	}
	if d.dropsOut() {
		state, err := RNGStateFromSeed(b.DropoutSeed)
		if err != nil {
			return nil, fmt.Errorf("distillation step: dropout seed: %w", err)
		}
		in = append(in, state)
	}
	if !final {
		return in, nil
	}
	// AdamW with PyTorch's arithmetic: the bias corrections are Python
	// floats (float64), applied as float32 scalars.
	step := float64(d.Steps + 1)
	bc1 := 1 - math.Pow(d.cfg.Beta1, step)
	bc2 := 1 - math.Pow(d.cfg.Beta2, step)
	scalar := func(x float64) *tensors.Tensor { return tensors.FromValue(float32(x)) }
	in = append(in, scalar(1-b.LR*d.cfg.WeightDecay), scalar(b.LR/bc1), scalar(math.Sqrt(bc2)))
	return in, nil
}

// embedsGuidance reports whether the student is told w: full students with
// a time_cond_proj_dim are; LoRA students never are (the LoRA scripts pass
// no timestep_cond).
func (d *Distiller) embedsGuidance() bool {
	return d.cfg.Mode == Full && d.cfg.Student.TimeCondProjDim != nil
}

// dropsOut reports whether the LoRA adapters train with dropout.
func (d *Distiller) dropsOut() bool { return d.cfg.Mode == LoRA && d.cfg.DropoutAdapters != nil }

// builder returns the step graph for a program layout; final programs
// update the weights, the others only return the accumulated gradients.
func (d *Distiller) builder(l groupLayout, final bool) nn.BuildFn {
	return func(groups []*nn.Params, in []*Node) []*Node { return d.build(groups, l, final, in) }
}

// build is the step graph; see REFERENCE-LCD §3 for each line's source.
func (d *Distiller) build(groups []*nn.Params, l groupLayout, final bool, in []*Node) []*Node {
	cfg := d.cfg
	teacherP, studentP := groups[l.teacher], groups[l.student]
	next := func() *Node { n := in[0]; in = in[1:]; return n }
	latents, noise, prompt, uncond := next(), next(), next(), next()
	var textEmbeds, uncondText, timeIDs *Node
	if cfg.Teacher.TextTime() {
		textEmbeds, uncondText, timeIDs = next(), next(), next()
	}
	start, end := next(), next()
	aS, sS, aE, sE := next(), next(), next(), next()
	cSkipS, cOutS, cSkipE, cOutE := next(), next(), next(), next()
	sqrtPrev, sqrtSigmaPrev, w := next(), next(), next()
	var wEmb *Node
	if d.embedsGuidance() {
		wEmb = next()
	}
	var rng *lora.RNG
	if d.dropsOut() {
		rng = &lora.RNG{State: next()}
	}
	var decay, stepSize, bc2Sqrt *Node
	if final {
		decay, stepSize, bc2Sqrt = next(), next(), next()
	}

	// The trainable parameters, in Names order, and the student's view.
	names := d.Student.Names()
	params := make([]*Node, len(names))
	for i, name := range names {
		params[i] = studentP.Root("").Param(name)
	}
	studentScope := studentP.Root("")
	studentCfg := cfg.Student
	if cfg.Mode == LoRA {
		adapters := cfg.Adapters(studentP)
		if rng != nil {
			adapters = cfg.DropoutAdapters(studentP, rng)
		}
		studentScope = teacherP.WithAdapters(adapters).Root("")
	}

	// 1. Forward noising at the start timestep and the student's prediction.
	z := GraphWeightedSum(aS, latents, sS, noise)
	studentOut := unet.Forward(studentScope, studentCfg, unet.Inputs{
		Sample: z, Timesteps: start, Context: prompt, TimestepCond: wEmb, TextEmbeds: textEmbeds, TimeIDs: timeIDs})
	studentX0, _ := GraphX0AndEps(studentOut, z, aS, sS, cfg.PredictionType)
	modelPred := GraphConsistency(z, studentX0, cSkipS, cOutS)

	// 2. Teacher, conditional and unconditional in one batch, no gradients.
	B := z.Shape().Dimensions[0]
	cat := func(a, b *Node) *Node { return Concatenate([]*Node{a, b}, 0) }
	tin := unet.Inputs{Sample: cat(z, z), Timesteps: cat(start, start), Context: cat(prompt, uncond)}
	if textEmbeds != nil {
		tin.TextEmbeds, tin.TimeIDs = cat(textEmbeds, uncondText), cat(timeIDs, timeIDs)
	}
	teacherOut := StopGradient(unet.Forward(teacherP.ForwardOnly().Root(""), cfg.Teacher, tin))
	condOut := Slice(teacherOut, AxisRange(0, B))
	uncondOut := Slice(teacherOut, AxisRange(B, 2*B))
	x0c, epsC := GraphX0AndEps(condOut, z, aS, sS, cfg.PredictionType)
	x0u, epsU := GraphX0AndEps(uncondOut, z, aS, sS, cfg.PredictionType)
	predX0 := GraphGuidance(x0c, x0u, w)
	predEps := GraphGuidance(epsC, epsU, w)
	xPrev := GraphWeightedSum(sqrtPrev, predX0, sqrtSigmaPrev, predEps)

	// 3. Target network at the end timestep, no gradients.
	var targetOut *Node
	if cfg.Mode == Full {
		targetOut = unet.Forward(groups[l.target].ForwardOnly().Root(""), studentCfg, unet.Inputs{
			Sample: xPrev, Timesteps: end, Context: prompt, TimestepCond: wEmb, TextEmbeds: textEmbeds, TimeIDs: timeIDs})
	} else {
		targetOut = unet.Forward(studentScope.Params().ForwardOnly().Root(""), studentCfg, unet.Inputs{
			Sample: xPrev, Timesteps: end, Context: prompt, TextEmbeds: textEmbeds, TimeIDs: timeIDs})
	}
	targetOut = StopGradient(targetOut)
	targetX0, _ := GraphX0AndEps(targetOut, xPrev, aE, sE, cfg.PredictionType)
	target := StopGradient(GraphConsistency(xPrev, targetX0, cSkipE, cOutE))

	// 4. Loss, gradients, global-norm clipping (torch.nn.utils.clip_grad_norm_).
	loss := losses.Loss(cfg.Loss, modelPred, target, cfg.HuberC)
	grads := Gradient(loss, params...)
	if G := cfg.AccumulationSteps; G > 1 {
		// accelerate divides each micro-batch's loss by G before backward.
		for i, name := range names {
			grads[i] = Add(groups[l.acc].Root("").Param(name), DivScalar(grads[i], float64(G)))
		}
		if !final {
			return append([]*Node{loss}, grads...)
		}
	}
	sumSq := ScalarZero(loss.Graph(), loss.DType())
	for _, g := range grads {
		sumSq = Add(sumSq, ReduceAllSum(Square(g)))
	}
	gradNorm := Sqrt(sumSq)
	if cfg.MaxGradNorm > 0 {
		coef := MinScalar(Div(Scalar(loss.Graph(), loss.DType(), cfg.MaxGradNorm), AddScalar(gradNorm, 1e-6)), 1.0)
		for i := range grads {
			grads[i] = Mul(grads[i], coef)
		}
	}

	outs := []*Node{loss, gradNorm}
	if cfg.Debug {
		outs = append(outs, z, studentOut, modelPred, condOut, uncondOut, predX0, predEps, xPrev, targetOut, target)
		outs = append(outs, grads...)
	}

	// 5. AdamW (torch.optim.AdamW): decoupled decay, then the bias-corrected
	// Adam update.
	newParams := make([]*Node, len(names))
	newM := make([]*Node, len(names))
	newV := make([]*Node, len(names))
	for i, name := range names {
		g := grads[i]
		m, v := groups[l.m].Root("").Param(name), groups[l.v].Root("").Param(name)
		p := Mul(params[i], decay)
		newM[i] = Add(m, MulScalar(Sub(g, m), 1-cfg.Beta1))
		newV[i] = Add(MulScalar(v, cfg.Beta2), MulScalar(Square(g), 1-cfg.Beta2))
		denom := AddScalar(Div(Sqrt(newV[i]), bc2Sqrt), cfg.AdamEps)
		newParams[i] = Sub(p, Mul(stepSize, Div(newM[i], denom)))
	}
	outs = append(outs, newParams...)
	outs = append(outs, newM...)
	outs = append(outs, newV...)

	// 6. EMA of the target after the optimizer step (full mode).
	if cfg.Mode == Full {
		tp := groups[l.target].Root("")
		for i, name := range names {
			outs = append(outs, Add(MulScalar(tp.Param(name), cfg.EMADecay), MulScalar(newParams[i], 1-cfg.EMADecay)))
		}
	}
	return outs
}
