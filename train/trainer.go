package train

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/nn"
)

// The groups a Trainer adds to its programs; a task's Loss reads the
// trained weights under TrainedGroup and their EMA under EMAGroup.
const (
	TrainedGroup = "trained"
	EMAGroup     = "ema"
	adamMGroup   = "adam_m"
	adamVGroup   = "adam_v"
	gradAccGroup = "grad_acc"
)

// The outputs every step returns beside the task's own.
const (
	LossOutput          = "loss"
	GradNormOutput      = "grad_norm"      // before clipping (optimizer steps only)
	WeightsFiniteOutput = "weights_finite" // every updated trained and EMA weight is finite (optimizer steps only)
	GradsFiniteOutput   = "grads_finite"   // loss scaling: every unscaled gradient is finite, so the step was applied
	GradPrefix          = "grad."          // Task.Gradients: the clipped gradients, grad.<weight name>
)

// The per-step scalars of the AdamW update, computed on the host from the
// learning rate and the step count.
const (
	decayInput    = "adamw.decay"         // 1 - lr·weight_decay
	stepSizeInput = "adamw.step_size"     // lr / (1 - β1^t)
	bc2SqrtInput  = "adamw.bc2_sqrt"      // sqrt(1 - β2^t)
	emaDecayInput = "ema.one_minus_decay" // 1 - μ_n (AdamW.EMADecayAt)
	scaleInput    = "loss_scale"          // LossScaling: the loss is multiplied by it before the gradient
)

// LossScaling is dynamic loss scaling for float16 training, as torch's
// GradScaler does it: the loss is multiplied by Scale before the gradient
// so that small gradients survive float16's range, and the gradients are
// divided by it again (in float32) before clipping and AdamW. A step whose
// unscaled gradients are not all finite is skipped inside the compiled
// graph (weights, moments and EMA keep their old values) and halves the
// scale; GrowthInterval good steps in a row double it.
type LossScaling struct {
	InitScale      float64 // GradScaler's init_scale: 65536
	GrowthInterval int     // GradScaler's growth_interval: 2000
}

// ScalerState is where loss scaling stands, which a checkpoint keeps.
type ScalerState struct {
	Scale     float64 `json:"scale"`      // the scale the next step multiplies its loss by
	GoodSteps int     `json:"good_steps"` // finite steps since the scale last changed
	Skipped   int     `json:"skipped"`    // steps skipped for non-finite gradients, in all
}

// GradScaler's factors: the scale halves on an overflow, doubles after
// GrowthInterval good steps.
const (
	scaleBackoff = 0.5
	scaleGrowth  = 2.0
)

// AdamW holds the optimizer's hyperparameters (torch.optim.AdamW's names),
// the clipping and the accumulation.
type AdamW struct {
	Beta1, Beta2 float64
	Eps          float64
	WeightDecay  float64
	MaxGradNorm  float64 // global-norm clipping; <= 0 disables
	// AccumulationSteps is how many micro-batches' gradients are summed
	// (each divided by it, as accelerate divides the loss) before one
	// optimizer step; 0 and 1 mean every Step is an optimizer step.
	AccumulationSteps int
	EMADecay          float64 // Task.EMA: ema ← μ·ema + (1-μ)·trained
	// EMADecayAt, when set, replaces the constant EMADecay with a decay per
	// optimizer step n (counted from 1), fed to the step as an input, and
	// the update with diffusers' EMAModel arithmetic, ema ← ema -
	// (1-μ_n)·(ema - trained) (train_text_to_image.py's --use_ema).
	EMADecayAt func(n int) float64
}

// LossFn builds a task's loss from its weight groups and inputs, by name;
// outputs are extra named values the step returns (debug intermediates,
// metrics).
type LossFn func(groups map[string]*nn.Params, inputs map[string]*Node) (loss *Node, outputs map[string]*Node)

// Task is what a training task supplies.
type Task struct {
	Frozen    []Group     // read by the loss, never updated
	Trained   *nn.Weights // updated in place by every optimizer step
	EMA       bool        // keep an EMA copy of Trained (starts as an exact copy)
	Inputs    []string    // the batch inputs, by name
	Loss      LossFn
	Optimizer AdamW
	NN        nn.Options
	Gradients bool // return the clipped gradients (GradPrefix) on optimizer steps
	// LossScaling, when set, scales the loss dynamically (float16 mixed
	// precision); nil trains unscaled.
	LossScaling *LossScaling
}

// Trainer holds the trained weights, the optimizer state and the compiled
// programs of one task.
type Trainer struct {
	Trained *nn.Weights
	EMA     *nn.Weights // nil without Task.EMA
	AdamM   *nn.Weights // AdamW first moments, named like Trained
	AdamV   *nn.Weights // AdamW second moments
	GradAcc *nn.Weights // the micro-batch gradients summed so far (accumulation only)
	// Steps counts optimizer steps, skipped ones included (the loop's
	// global step, as the reference scripts count it).
	Steps int
	// Scaler is the loss scale's state (Task.LossScaling; zero without).
	Scaler ScalerState

	task        Task
	micro       int      // micro-batches accumulated towards the next step
	programs    programs // by role
	weightNames []string
}

// programs are the compiled graphs of a task: the optimizer step, and with
// accumulation the first micro-batch (which starts the sum, so no zeroed
// accumulator is fed) and the micro-batches after it.
type programs struct{ step, first, more *Program }

// New sets up a task's trainer: optimizer state (and the EMA copy) are
// created here, and the programs compiled.
func New(b compute.Backend, task Task) (*Trainer, error) {
	if task.Trained == nil || task.Trained.Len() == 0 || task.Loss == nil {
		return nil, fmt.Errorf("train: a task needs trained weights and a loss")
	}
	for _, g := range task.Frozen {
		if slices.Contains([]string{TrainedGroup, EMAGroup, adamMGroup, adamVGroup, gradAccGroup}, g.Name) {
			return nil, fmt.Errorf("train: frozen group name %q is the trainer's own", g.Name)
		}
	}
	t := &Trainer{Trained: task.Trained, task: task, weightNames: task.Trained.Names()}
	if ls := task.LossScaling; ls != nil {
		if !(ls.InitScale > 0) || ls.GrowthInterval < 1 {
			return nil, fmt.Errorf("train: loss scaling needs a positive initial scale and growth interval, got %g and %d", ls.InitScale, ls.GrowthInterval)
		}
		t.Scaler.Scale = ls.InitScale
	}
	var err error
	if task.EMA {
		if t.EMA, err = task.Trained.Clone(); err != nil {
			return nil, err
		}
	}
	t.AdamM, t.AdamV = zerosLike(task.Trained), zerosLike(task.Trained)
	if task.Optimizer.AccumulationSteps > 1 {
		// Filled by the first micro-batch before anything reads it.
		t.GradAcc = zerosLike(task.Trained)
		if t.programs.first, err = t.compile(b, false, false); err != nil {
			return nil, err
		}
		if t.programs.more, err = t.compile(b, false, true); err != nil {
			return nil, err
		}
	}
	if t.programs.step, err = t.compile(b, true, t.GradAcc != nil); err != nil {
		return nil, err
	}
	return t, nil
}

func zerosLike(w *nn.Weights) *nn.Weights {
	z := nn.NewWeights()
	for _, name := range w.Names() {
		t, _ := w.Get(name)
		z.SetFloat32(name, make([]float32, t.Size()), t.Shape().Dimensions...)
	}
	return z
}

// Accumulating reports whether some micro-batches of the next optimizer
// step have been seen: a checkpoint taken now would lose them.
func (t *Trainer) Accumulating() bool { return t.micro > 0 }

// Result reports one Step.
type Result struct {
	Applied       bool // an optimizer step was taken (false on accumulating micro-batches)
	Loss          float32
	GradNorm      float32 // global gradient norm before clipping (optimizer steps)
	WeightsFinite bool    // every updated trained and EMA weight is finite (optimizer steps)
	// Skipped: loss scaling found non-finite gradients, so this optimizer
	// step changed nothing but the scale.
	Skipped bool
	// Outputs are the task's named outputs, and with Task.Gradients the
	// clipped gradients on optimizer steps.
	Outputs map[string]*tensors.Tensor
}

// Step runs one (micro-)batch at learning rate lr. Every
// AccumulationSteps-th call applies AdamW (and the EMA) and reports
// Applied; the calls between only sum their gradients.
func (t *Trainer) Step(inputs map[string]*tensors.Tensor, lr float64) (*Result, error) {
	G := t.task.Optimizer.AccumulationSteps
	final := G <= 1 || t.micro+1 == G
	prog := t.programs.step
	in := inputs
	if t.scaling() {
		in = make(map[string]*tensors.Tensor, len(inputs)+1)
		for k, v := range inputs {
			in[k] = v
		}
		in[scaleInput] = tensors.FromValue(float32(t.Scaler.Scale))
	}
	switch {
	case !final && t.micro == 0:
		prog = t.programs.first
	case !final:
		prog = t.programs.more
	default:
		if !t.scaling() {
			in = make(map[string]*tensors.Tensor, len(inputs)+3)
			for k, v := range inputs {
				in[k] = v
			}
		}
		// AdamW with PyTorch's arithmetic: the bias corrections are Python
		// floats (float64), applied as float32 scalars. A skipped step is
		// no AdamW step: torch's optimizer.step never ran for it.
		o, step := t.task.Optimizer, float64(t.OptimizerSteps()+1)
		scalar := func(x float64) *tensors.Tensor { return tensors.FromValue(float32(x)) }
		in[decayInput] = scalar(1 - lr*o.WeightDecay)
		in[stepSizeInput] = scalar(lr / (1 - math.Pow(o.Beta1, step)))
		in[bc2SqrtInput] = scalar(math.Sqrt(1 - math.Pow(o.Beta2, step)))
		if t.scheduledEMA() {
			in[emaDecayInput] = scalar(1 - o.EMADecayAt(t.Steps+1))
		}
	}
	outs, err := prog.Run(in)
	if err != nil {
		return nil, fmt.Errorf("optimizer step %d: %w", t.Steps+1, err)
	}
	res := &Result{Applied: final, Loss: tensors.ToScalar[float32](outs[LossOutput]), Outputs: map[string]*tensors.Tensor{}}
	for name, v := range outs {
		if !strings.Contains(name, "/") && name != LossOutput && name != GradNormOutput && name != WeightsFiniteOutput && name != GradsFiniteOutput {
			res.Outputs[name] = v
		}
	}
	if !final {
		t.setGroup(t.GradAcc, gradAccGroup, outs)
		t.micro++
		return res, nil
	}
	res.GradNorm = tensors.ToScalar[float32](outs[GradNormOutput])
	res.WeightsFinite = tensors.ToScalar[bool](outs[WeightsFiniteOutput])
	for group, w := range map[string]*nn.Weights{TrainedGroup: t.Trained, adamMGroup: t.AdamM, adamVGroup: t.AdamV, EMAGroup: t.EMA} {
		t.setGroup(w, group, outs)
	}
	t.micro = 0
	t.Steps++
	if t.scaling() {
		res.Skipped = !tensors.ToScalar[bool](outs[GradsFiniteOutput])
		t.updateScale(res.Skipped)
	}
	return res, nil
}

// scaling reports whether the loss is scaled (Task.LossScaling).
func (t *Trainer) scaling() bool { return t.task.LossScaling != nil }

// updateScale is GradScaler.update after a step: back off on an overflow,
// grow after GrowthInterval good steps.
func (t *Trainer) updateScale(skipped bool) {
	sc := &t.Scaler
	if skipped {
		sc.Scale *= scaleBackoff
		sc.GoodSteps = 0
		sc.Skipped++
		return
	}
	if sc.GoodSteps++; sc.GoodSteps == t.task.LossScaling.GrowthInterval {
		sc.Scale *= scaleGrowth
		sc.GoodSteps = 0
	}
}

// OptimizerSteps is how many AdamW steps were applied: Steps less those
// loss scaling skipped. The bias corrections count these, as torch's
// AdamW counts its step() calls, and so does the learning-rate schedule
// (accelerate does not step the scheduler when the optimizer step was
// skipped).
func (t *Trainer) OptimizerSteps() int { return t.Steps - t.Scaler.Skipped }

// scheduledEMA reports whether the EMA decay changes per step
// (AdamW.EMADecayAt).
func (t *Trainer) scheduledEMA() bool { return t.EMA != nil && t.task.Optimizer.EMADecayAt != nil }

// setGroup stores a group's updated weights in place (the programs keep w).
func (t *Trainer) setGroup(w *nn.Weights, group string, outs map[string]*tensors.Tensor) {
	if w == nil {
		return
	}
	for _, name := range t.weightNames {
		w.Set(name, outs[WeightOutput(group, name)])
	}
}

// compile builds one of the task's programs: the optimizer step (final),
// or a micro-batch that returns its summed gradients; acc says whether the
// program reads the gradients summed so far.
func (t *Trainer) compile(b compute.Backend, final, acc bool) (*Program, error) {
	groups := append(slices.Clone(t.task.Frozen), Group{TrainedGroup, t.Trained})
	if t.EMA != nil {
		groups = append(groups, Group{EMAGroup, t.EMA})
	}
	if final {
		groups = append(groups, Group{adamMGroup, t.AdamM}, Group{adamVGroup, t.AdamV})
	}
	if acc {
		groups = append(groups, Group{gradAccGroup, t.GradAcc})
	}
	inputs := slices.Clone(t.task.Inputs)
	if t.scaling() {
		inputs = append(inputs, scaleInput)
	}
	if final {
		inputs = append(inputs, decayInput, stepSizeInput, bc2SqrtInput)
		if t.scheduledEMA() {
			inputs = append(inputs, emaDecayInput)
		}
	}
	prog, err := Compile(b, groups, inputs, t.task.NN, func(w map[string]*nn.Params, in map[string]*Node) map[string]*Node {
		return t.build(w, in, final, acc)
	})
	if err != nil {
		return nil, err
	}
	// Step replaces what a program updates with its outputs (setGroup), so
	// those buffers are donated: the optimizer step updates the weights,
	// moments and EMA in place of the old ones, a micro-batch its gradient
	// sums.
	if final {
		prog.Donate(TrainedGroup, EMAGroup, adamMGroup, adamVGroup, gradAccGroup)
	} else {
		prog.Donate(gradAccGroup)
	}
	return prog, nil
}

func (t *Trainer) build(w map[string]*nn.Params, in map[string]*Node, final, acc bool) map[string]*Node {
	o, names := t.task.Optimizer, t.weightNames
	trained := w[TrainedGroup].Root("")
	params := make([]*Node, len(names))
	for i, name := range names {
		params[i] = trained.Param(name)
	}
	if t.EMA != nil {
		// Fed to every program so any loss may read it; the micro-batch
		// programs of a loss that does not still bind it.
		for _, name := range names {
			w[EMAGroup].Root("").Param(name)
		}
	}
	loss, extra := t.task.Loss(w, in)
	outs := map[string]*Node{LossOutput: loss}
	for name, v := range extra {
		if _, taken := outs[name]; taken || strings.HasPrefix(name, GradPrefix) || strings.Contains(name, "/") ||
			name == GradNormOutput || name == WeightsFiniteOutput || name == GradsFiniteOutput {
			panic(fmt.Errorf("train: task output %q collides with the trainer's own", name))
		}
		outs[name] = v
	}

	var grads []*Node
	if t.scaling() {
		// Backward from loss·scale; the micro-batch sums stay scaled.
		grads = Gradient(Mul(loss, ConvertDType(in[scaleInput], loss.DType())), params...)
	} else {
		grads = Gradient(loss, params...)
	}
	if G := o.AccumulationSteps; G > 1 {
		// accelerate divides each micro-batch's loss by G before backward.
		for i, name := range names {
			grads[i] = DivScalar(grads[i], float64(G))
			if acc {
				grads[i] = Add(w[gradAccGroup].Root("").Param(name), grads[i])
			}
		}
		if !final {
			for i, name := range names {
				outs[WeightOutput(gradAccGroup, name)] = grads[i]
			}
			return outs
		}
	}

	// Loss scaling: unscale (the gradients of float32 master weights are
	// float32) and check, as GradScaler.unscale_ does, before clipping.
	var gradsFinite *Node
	if t.scaling() {
		gradsFinite = Const(loss.Graph(), true)
		for i := range grads {
			grads[i] = Div(grads[i], ConvertDType(in[scaleInput], grads[i].DType()))
			gradsFinite = LogicalAnd(gradsFinite, LogicalAll(IsFinite(grads[i])))
		}
		outs[GradsFiniteOutput] = gradsFinite
	}

	// Global-norm clipping (torch.nn.utils.clip_grad_norm_).
	sumSq := ScalarZero(loss.Graph(), loss.DType())
	for _, g := range grads {
		sumSq = Add(sumSq, ReduceAllSum(Square(g)))
	}
	gradNorm := Sqrt(sumSq)
	outs[GradNormOutput] = gradNorm
	if o.MaxGradNorm > 0 {
		coef := MinScalar(Div(Scalar(loss.Graph(), loss.DType(), o.MaxGradNorm), AddScalar(gradNorm, 1e-6)), 1.0)
		for i := range grads {
			grads[i] = Mul(grads[i], coef)
		}
	}
	if t.task.Gradients {
		for i, name := range names {
			outs[GradPrefix+name] = grads[i]
		}
	}

	// AdamW (torch.optim.AdamW): decoupled decay, then the bias-corrected
	// Adam update; then the EMA of the updated weights.
	decay, stepSize, bc2Sqrt := in[decayInput], in[stepSizeInput], in[bc2SqrtInput]
	m, v := w[adamMGroup].Root(""), w[adamVGroup].Root("")
	finite := Const(loss.Graph(), true)
	for i, name := range names {
		g := grads[i]
		p := Mul(params[i], decay)
		newM := Add(m.Param(name), MulScalar(Sub(g, m.Param(name)), 1-o.Beta1))
		newV := Add(MulScalar(v.Param(name), o.Beta2), MulScalar(Square(g), 1-o.Beta2))
		denom := AddScalar(Div(Sqrt(newV), bc2Sqrt), o.Eps)
		newP := Sub(p, Mul(stepSize, Div(newM, denom)))
		if gradsFinite != nil {
			// A skipped step keeps every weight and moment as it was.
			newP = Where(gradsFinite, newP, params[i])
			newM = Where(gradsFinite, newM, m.Param(name))
			newV = Where(gradsFinite, newV, v.Param(name))
		}
		outs[WeightOutput(TrainedGroup, name)] = newP
		outs[WeightOutput(adamMGroup, name)] = newM
		outs[WeightOutput(adamVGroup, name)] = newV
		finite = LogicalAnd(finite, LogicalAll(IsFinite(newP)))
		if t.EMA != nil {
			// Two arithmetics, not bit-identical in float32: the LCD
			// scripts' update_ema (μ·ema + (1-μ)·trained) for a constant
			// decay, diffusers' EMAModel for a scheduled one.
			old := w[EMAGroup].Root("").Param(name)
			var ema *Node
			if t.scheduledEMA() {
				ema = Sub(old, Mul(in[emaDecayInput], Sub(old, newP)))
			} else {
				ema = Add(MulScalar(old, o.EMADecay), MulScalar(newP, 1-o.EMADecay))
			}
			if gradsFinite != nil {
				ema = Where(gradsFinite, ema, old)
			}
			outs[WeightOutput(EMAGroup, name)] = ema
			finite = LogicalAnd(finite, LogicalAll(IsFinite(ema)))
		}
	}
	outs[WeightsFiniteOutput] = finite
	return outs
}
