package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/schollz/progressbar/v3"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/latentcache"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/models/vae"
	"github.com/golcm/golcm/sampling"
)

// ErrInterrupted is returned (wrapped) when the context ends a run early;
// the run's state was checkpointed first.
var ErrInterrupted = errors.New("interrupted")

// Options are how a run reports, not what it computes.
type Options struct {
	// Log receives the start-up lines, the progress bar and the end summary;
	// nil means os.Stderr.
	Log io.Writer
	// NoProgress turns the progress bar off (tests, notebooks).
	NoProgress bool
	// StopAfter ends the run after this many steps of this invocation
	// without a final checkpoint, as a killed process would (tests).
	StopAfter int
	// OnStep, when set, is called after every optimizer step with its
	// result (live plots in notebooks, tests).
	OnStep func(step int, res *lcm.StepResult)
}

// Result summarises a run.
type Result struct {
	OutputDir  string
	Steps      int       // optimizer steps completed in total
	Losses     []float32 // loss of every step this invocation ran
	Checkpoint string    // the last checkpoint written
	Exported   []string  // artifact paths written at the end
	Backend    string
	// Metrics are the task's last measurements: the vae task's
	// validation_psnr, latent_std and scaling_factor.
	Metrics map[string]float64
}

// run is one experiment being executed.
type run struct {
	spec     spec.Spec
	opts     Options
	log      io.Writer
	backend  compute.Backend
	nnOpts   nn.Options
	pipe     *pipeline.Pipeline
	schedCfg lcm.SchedulerConfig
	schedule *lcm.NoiseSchedule
	solver   *lcm.DDIMSolver

	task task
	// restoring says a checkpoint replaces the built task's weights (a
	// resumed run, an export from a checkpoint): nothing trains from scratch.
	restoring bool

	studentCfg *unet.Config
	adapters   *lora.Adapters
	distiller  *lcm.Distiller
	cond       *clip.Conditioner
	uncond     map[int]*clip.HostConditioning // unconditional embeddings by batch size
	vaeRunner  *vae.Runner
	loader     *datasets.Loader
	// cache, with data.cache, holds the encoders' outputs the batches read
	// (cache.go); cachedEmpty is its encoding of "".
	cache       *latentcache.Cache
	cachedEmpty *latentcache.Entry
	rng         *rand.PCG
	dataPos     datasets.Position
	embedDim    int

	samplers  map[string]*sampling.Sampler
	precision mixedPrecision // run.mixed_precision (precision.go)
	eval      *evaluator     // run.eval_every's, built at its first use
	metrics   *os.File
	result    Result
}

// Run executes the experiment described by s.
func Run(ctx context.Context, s spec.Spec, opts Options) (res *Result, err error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := &run{spec: s, opts: opts, log: opts.Log}
	if r.log == nil {
		r.log = os.Stderr
	}
	defer r.close()
	// GoMLX reports graph errors by panicking; turn a stray one into an
	// error here, at the package boundary.
	var runErr error
	if err := backend.Catch(func() { res, runErr = r.execute(ctx) }); err != nil {
		return res, err
	}
	return res, runErr
}

func (r *run) close() {
	if r.metrics != nil {
		r.metrics.Close()
	}
	if r.loader != nil {
		r.loader.Close()
	}
	if r.eval != nil {
		r.eval.close()
	}
}

func (r *run) execute(ctx context.Context) (*Result, error) {
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	if err := r.loop(ctx); err != nil {
		return &r.result, err
	}
	if err := r.task.export(); err != nil {
		return &r.result, err
	}
	fmt.Fprintf(r.log, "done: %d steps, artifacts in %s\n", r.result.Steps, r.spec.Run.OutputDir)
	return &r.result, nil
}

// start brings the run to its next step: backend, run folder, models and
// compiled step, the checkpoint it resumes from, data, metrics, and a
// validation and evaluation the killed run owed.
func (r *run) start(ctx context.Context) error {
	s := r.spec
	out := s.Run.OutputDir
	r.result.OutputDir = out
	b, choice, err := backend.Default(s.Run.Backend)
	if err != nil {
		return err
	}
	r.backend = b
	r.result.Backend = choice.Config
	r.nnOpts = nn.ForBackend(choice.Name())
	r.nnOpts.GradientCheckpointing = s.Run.GradientCheckpointing
	fmt.Fprintln(r.log, backend.Describe(b, choice))

	// Nothing in the output folder changes until the run is allowed in and
	// has loaded (runfolder.go).
	resumeFrom, err := r.claimRunFolder()
	if err != nil {
		return err
	}
	if err := r.loadTeacher(); err != nil {
		return err
	}
	state := State{}
	r.precision.dtype = precision(s.Run.MixedPrecision)
	r.restoring = len(resumeFrom) > 0
	r.task = r.newTask()
	if err := r.task.build(); err != nil {
		return err
	}
	if err := r.applyPrecision(); err != nil {
		return err
	}
	resumeDir := ""
	if len(resumeFrom) > 0 {
		if state, resumeDir, err = r.restoreNewest(resumeFrom); err != nil {
			return err
		}
		fmt.Fprintf(r.log, "resuming from %s at step %d\n", resumeDir, state.Step)
	}
	if err := r.takeRunFolder(resumeDir); err != nil {
		return err
	}
	r.rng = rand.NewPCG(uint64(s.Run.Seed), 0x6c636d)
	if state.RNG != nil {
		if err := r.rng.UnmarshalBinary(state.RNG); err != nil {
			return fmt.Errorf("checkpoint %s: random state: %w", resumeDir, err)
		}
	}
	if err := r.openData(state.Data); err != nil {
		return err
	}
	if err := r.openMetrics(state.Step); err != nil {
		return err
	}
	if err := r.owedValidation(state.Step); err != nil {
		return err
	}
	return r.owedEvaluation(ctx, state.Step)
}

// loraDropout reports whether the run trains LoRA adapters with dropout.
func (r *run) loraDropout() bool { return r.spec.Distill.Mode == "lora" && r.spec.LoRA.Dropout > 0 }

func (r *run) loadTeacher() error {
	s := r.spec
	if s.Model.InitTiny {
		if _, err := os.Stat(s.Model.Path); os.IsNotExist(err) {
			fmt.Fprintf(r.log, "creating a tiny random teacher in %s\n", s.Model.Path)
			if err := pipeline.InitTiny(s.Model.Path, uint64(s.Run.Seed)); err != nil {
				return err
			}
		}
	}
	load := pipeline.Load
	if s.Data.Cache != "" && s.Task != "vae" {
		load = pipeline.LoadWithoutEncoders // training reads their outputs from the cache
	}
	p, err := load(s.Model.Path, s.Model.Revision, s.Model.Variant, s.Model.VAE)
	if err != nil {
		return err
	}
	r.pipe = p
	if r.schedCfg, err = lcm.ReadSchedulerConfig(p.SchedulerConfig); err != nil {
		return err
	}
	if r.schedule, err = lcm.NewNoiseSchedule(r.schedCfg); err != nil {
		return err
	}
	if r.solver, err = lcm.NewDDIMSolver(r.schedule, s.Distill.NumDDIMTimesteps); err != nil {
		return fmt.Errorf("distill.num_ddim_timesteps: %w", err)
	}
	if res, f := s.Data.Resolution, p.SizeMultiple(); res%f != 0 {
		return fmt.Errorf("data.resolution = %d is not a multiple of %d (VAE factor × UNet downsampling of %s)", res, f, s.Model.Path)
	}
	return checkTrainingSizes(s.Data.Config, p.SizeMultiple(), s.Model.Path)
}

// buildStudent makes the student (full UNet with a guidance embedding, or
// LoRA adapters) and compiles the distillation step.
func (r *run) buildStudent() error {
	s := r.spec
	teacher := r.pipe.UNet
	cfg := lcm.DistillConfig{
		Teacher: teacher.Config, PredictionType: r.schedule.PredictionType,
		HuberC: s.Distill.HuberC, MaxGradNorm: s.Optim.MaxGradNorm,
		Beta1: s.Optim.Beta1, Beta2: s.Optim.Beta2, AdamEps: s.Optim.Eps, WeightDecay: s.Optim.WeightDecay,
		EMADecay: s.Distill.EMADecay, AccumulationSteps: s.Optim.GradientAccumulationSteps, NN: r.nnOpts,
	}
	var err error
	if cfg.Loss, err = losses.Parse(s.Distill.Loss); err != nil {
		return fmt.Errorf("distill.loss: %w", err)
	}
	var student *nn.Weights
	switch s.Distill.Mode {
	case "full":
		cfg.Mode = lcm.Full
		student, r.studentCfg, err = FullStudent(teacher, s.Distill.TimeCondProjDim, uint64(s.Run.Seed))
		if err != nil {
			return err
		}
		r.embedDim = *r.studentCfg.TimeCondProjDim
	case "lora":
		cfg.Mode = lcm.LoRA
		r.studentCfg = teacher.Config
		r.adapters, err = lora.New(teacher.Config.ParamShapes(), loraConfig(s.LoRA), s.Run.Seed)
		if err != nil {
			return err
		}
		student = r.adapters.Weights
		cfg.Adapters = r.adapters.Lookup
		if r.loraDropout() {
			cfg.DropoutAdapters = r.adapters.TrainingLookup
		}
		fmt.Fprintf(r.log, "LoRA: %d trainable parameters in %d modules\n", r.adapters.NumTrainable(), len(r.adapters.Modules))
	}
	cfg.Student = r.studentCfg
	r.distillPrecision(&cfg)
	r.distiller, err = lcm.NewDistiller(r.backend, cfg, teacher.Weights, student)
	return err
}

// FullStudent builds a full-distillation student from the teacher: the same
// weights plus time_embedding.cond_proj when the teacher has none, drawn
// like PyTorch's default Linear init (uniform ±1/sqrt(dim)) from seed — the
// reference scripts do the same, from torch's RNG (REFERENCE-LCD §4.1).
func FullStudent(teacher *unet.Model, dim int, seed uint64) (*nn.Weights, *unet.Config, error) {
	student, err := teacher.Weights.Clone()
	if err != nil {
		return nil, nil, err
	}
	cfg := studentConfig(teacher.Config, dim)
	if teacher.Config.TimeCondProjDim == nil {
		dims := []int{cfg.BlockOutChannels[0], dim}
		rng := rand.New(rand.NewPCG(seed, 0x636f6e64))
		student.SetFloat32("time_embedding.cond_proj.weight", nn.KaimingUniform(rng, dims), dims...)
	}
	return student, cfg, nil
}

// restore loads a checkpoint's weights into the compiled run.
func (r *run) restore(dir string) (State, error) {
	groups := r.task.groups()
	var names []string
	for name, w := range groups {
		if w != nil {
			names = append(names, name)
		}
	}
	loaded, st, err := loadCheckpoint(dir, names)
	if err != nil {
		return st, err
	}
	for _, name := range names {
		if err := replaceWeights(groups[name], loaded[name]); err != nil {
			return st, fmt.Errorf("checkpoint %s: %s: %w", dir, name, err)
		}
	}
	r.task.trainer().Steps = st.Step
	if st.Scaler != nil {
		r.task.trainer().Scaler = *st.Scaler
	}
	r.result.Steps = st.Step
	return st, nil
}

// replaceWeights swaps src's tensors into dst, which must hold the same
// names and shapes (the compiled step keeps dst).
func replaceWeights(dst, src *nn.Weights) error {
	schema := map[string][]int{}
	for _, name := range dst.Names() {
		t, _ := dst.Get(name)
		schema[name] = t.Shape().Dimensions
	}
	if err := nn.CheckSchema("weights", schema, src); err != nil {
		return err
	}
	for _, name := range dst.Names() {
		t, _ := src.Get(name)
		dst.Set(name, t)
	}
	return nil
}

// dataConfig is the training data's loader configuration: the [data]
// section, with the generated images written first when data.generate asks.
func (r *run) dataConfig() (datasets.Config, error) {
	s := r.spec
	cfg := s.Data.Config // the [data] section is the datasets package's own config
	cfg.Seed = s.Run.Seed
	if s.Data.Generate > 0 {
		dir := filepath.Join(s.Run.OutputDir, "synthetic")
		if err := datasets.WriteSyntheticImages(dir, s.Data.Generate, s.Data.Resolution, uint64(s.Run.Seed)); err != nil {
			return cfg, fmt.Errorf("data.generate: %w", err)
		}
		cfg.Sources, cfg.Format = []string{dir}, datasets.FormatImageFolder
	}
	return cfg, nil
}

func (r *run) openData(pos datasets.Position) error {
	cfg, err := r.dataConfig()
	if err != nil {
		return err
	}
	r.dataPos = pos
	if r.spec.Data.Cache != "" && r.spec.Task != "vae" {
		return r.openCache(cfg, pos)
	}
	r.loader, err = datasets.NewAt(cfg, pos)
	if err != nil {
		return err
	}
	if r.spec.Task == "vae" {
		return nil // no text, and the VAE is the trained model (vae.go)
	}
	if r.cond, err = clip.NewConditioner(r.backend, r.encoderOptions(), r.pipe.TextEncoders...); err != nil {
		return err
	}
	r.vaeRunner = vae.NewRunner(r.backend, r.pipe.VAE, r.vaeOptions())
	return nil
}

// normals draws n standard normal float32 values from the run's generator.
func (r *run) normals(n int) []float32 {
	rng := rand.New(r.rng)
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// stepBatch turns a data batch into the distillation step's inputs, drawing
// the step's random numbers in a fixed order from the run's generator.
func (r *run) stepBatch(ctx context.Context) (*lcm.Batch, error) {
	s := r.spec
	batch, err := r.loader.Next(ctx)
	if err != nil {
		return nil, err
	}
	B, H, W := len(batch.Captions), batch.Height, batch.Width
	rng := rand.New(r.rng)
	draws := lcm.Draws{Index: make([]int64, B), U: make([]float32, B)}
	for i := range B {
		draws.Index[i] = int64(rng.IntN(len(r.solver.Timesteps)))
	}
	for i := range B {
		draws.U[i] = rng.Float32()
	}
	f := r.pipe.VAE.Config.DownsampleFactor()
	latentDims := []int{B, r.pipe.VAE.Config.LatentChannels, H / f, W / f}
	size := latentDims[0] * latentDims[1] * latentDims[2] * latentDims[3]
	noise := tensors.FromFlatDataAndDimensions(r.normals(size), latentDims...)
	vaeNoise := tensors.FromFlatDataAndDimensions(r.normals(size), latentDims...)

	enc, err := r.encode(batch, batch.Captions, vaeNoise)
	if err != nil {
		return nil, err
	}
	cond := enc.cond
	uncond, err := r.uncondEmbeds(B)
	if err != nil {
		return nil, err
	}
	coefs, err := lcm.Coefficients(r.schedule, r.solver, draws, s.Distill.WMin, s.Distill.WMax, s.Distill.TimestepScalingFactor, r.embedDim)
	if err != nil {
		return nil, err
	}
	lr, err := r.learningRate()
	if err != nil {
		return nil, err
	}
	out := &lcm.Batch{
		Latents: enc.latents, Noise: noise, PromptEmbeds: cond.Context, UncondEmbeds: uncond.Context,
		Coefs: coefs, LR: lr,
	}
	if r.loraDropout() {
		// From the run's generator, so a resumed run draws the same masks.
		out.DropoutSeed = int64(rand.New(r.rng).Uint64() >> 1)
	}
	if r.pipe.UNet.Config.TextTime() {
		out.TextEmbeds, out.UncondTextEmbeds = cond.TextEmbeds, uncond.TextEmbeds
		ids := enc.timeIDs
		if s.Data.FixCropAndSize {
			for i := range B {
				copy(ids[6*i:6*i+6], clip.TimeIDs(H, W, 0, 0, H, W))
			}
		}
		out.TimeIDs = tensors.FromFlatDataAndDimensions(ids, B, 6)
	}
	r.dataPos = r.loader.Position()
	return out, nil
}

// uncondEmbeds returns the unconditional embeddings of a batch of B:
// CLIP("") for SD (from the cache with data.cache), zeros for SDXL, as the
// scripts do. They depend only on the batch size, so they are computed once
// (the scripts, too, encode "" once before the loop).
func (r *run) uncondEmbeds(B int) (uncond *clip.HostConditioning, err error) {
	if u, ok := r.uncond[B]; ok {
		return u, nil
	}
	switch {
	case r.pipe.Kind() == pipeline.SDXL:
		encs := r.pipe.TextEncoders
		uncond = clip.ZeroConditioning(B, r.pipe.Tokenizers[0].MaxLength, encs[0].Config.HiddenSize+encs[1].Config.HiddenSize,
			encs[1].Config.ProjectionDim)
	case r.cache != nil:
		uncond, err = r.emptyPromptEmbeds(B)
	default:
		uncond, err = r.tokenizeAndEncode(make([]string, B))
	}
	if err != nil {
		return nil, err
	}
	if r.uncond == nil {
		r.uncond = map[int]*clip.HostConditioning{}
	}
	r.uncond[B] = uncond
	return uncond, nil
}

func (r *run) tokenizeAndEncode(texts []string) (*clip.HostConditioning, error) {
	var ids []*tensors.Tensor
	for _, tok := range r.pipe.Tokenizers {
		flat, _ := tok.EncodeBatch(texts)
		ids = append(ids, tensors.FromFlatDataAndDimensions(flat, len(texts), tok.MaxLength))
	}
	return r.cond.Encode(ids...)
}

// learningRate is the learning rate of the next optimizer step.
func (r *run) learningRate() (float64, error) {
	o := r.spec.Optim
	mult, err := LRMultiplier(o.Schedule, r.task.trainer().OptimizerSteps(), o.WarmupSteps, o.MaxTrainSteps)
	return o.LR * mult, err
}

func (r *run) loop(ctx context.Context) error {
	s := r.spec
	d := r.task.trainer()
	var bar *progressbar.ProgressBar
	if !r.opts.NoProgress {
		bar = progressbar.NewOptions(s.Optim.MaxTrainSteps, progressbar.OptionSetWriter(r.log),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("step"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(20))
		_ = bar.Set(d.Steps)
	}
	start := time.Now()
	ran := 0
	lastSaved := -1
	var microLosses float64
	micro := 0
	for d.Steps < s.Optim.MaxTrainSteps {
		// An interruption waits for the end of a gradient-accumulation
		// window: a checkpoint cannot hold half-summed gradients.
		if ctx.Err() != nil && !d.Accumulating() {
			path, err := r.checkpoint()
			if err != nil {
				return fmt.Errorf("%w at step %d, and saving a checkpoint failed: %v", ErrInterrupted, d.Steps, err)
			}
			return fmt.Errorf("%w at step %d: checkpoint saved to %s; continue with -set run.resume=latest", ErrInterrupted, d.Steps, path)
		}
		step, lr, err := r.task.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				continue // the top of the loop checkpoints and stops
			}
			return fmt.Errorf("data at step %d: %w", d.Steps+1, err)
		}
		res, err := step()
		if err != nil {
			return err
		}
		// fp16's loss scaling skips a step whose forward overflowed too.
		if !res.Skipped && (math.IsNaN(float64(res.Loss)) || math.IsInf(float64(res.Loss), 0)) {
			return fmt.Errorf("loss is %v at step %d (lr %.3g, grad norm %v): stopping; the last good checkpoint is %s",
				res.Loss, d.Steps, lr, res.GradNorm, lastCheckpointIn(s.Run.OutputDir))
		}
		microLosses += float64(res.Loss)
		micro++
		if !res.Applied {
			continue
		}
		// A finite loss is computed before the update: the step's own
		// in-graph flag says whether the updated weights are finite too
		// (an lr of 1e39 overflows them with a finite loss).
		if !res.WeightsFinite {
			return fmt.Errorf("the weights are not finite after step %d (lr %.3g, grad norm %v): stopping; the last good checkpoint is %s",
				d.Steps, lr, res.GradNorm, lastCheckpointIn(s.Run.OutputDir))
		}
		// With gradient accumulation the step's loss is the mean over its
		// micro-batches.
		res.Loss = float32(microLosses / float64(micro))
		microLosses, micro = 0, 0
		ran++
		r.result.Steps = d.Steps
		r.result.Losses = append(r.result.Losses, res.Loss)
		if err := r.logMetrics(res, lr, time.Since(start), ran); err != nil {
			return err
		}
		if r.opts.OnStep != nil {
			r.opts.OnStep(d.Steps, res)
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("loss %.4g lr %.2g %s", res.Loss, lr, r.loader.Stats().String()))
			_ = bar.Set(d.Steps)
		}
		if s.Run.CheckpointEvery > 0 && d.Steps%s.Run.CheckpointEvery == 0 {
			if _, err := r.checkpoint(); err != nil {
				return err
			}
			lastSaved = d.Steps
		}
		if s.Run.ValidationEvery > 0 && d.Steps%s.Run.ValidationEvery == 0 {
			if err := r.task.validate(d.Steps); err != nil {
				return err
			}
		}
		if s.Run.EvalEvery > 0 && d.Steps%s.Run.EvalEvery == 0 {
			if err := r.evaluate(ctx, d.Steps); err != nil {
				if ctx.Err() != nil {
					continue // the top of the loop checkpoints; the resumed run owes this evaluation
				}
				return err
			}
		}
		if r.opts.StopAfter > 0 && ran >= r.opts.StopAfter {
			return fmt.Errorf("%w: StopAfter=%d reached at step %d (no final checkpoint)", ErrInterrupted, ran, d.Steps)
		}
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(r.log)
	}
	if lastSaved != d.Steps {
		if _, err := r.checkpoint(); err != nil {
			return err
		}
	}
	if s.Run.ValidationEvery > 0 && d.Steps%s.Run.ValidationEvery != 0 {
		if err := r.task.validate(d.Steps); err != nil {
			return err
		}
	}
	if s.Run.EvalEvery > 0 && d.Steps%s.Run.EvalEvery != 0 {
		return r.evaluate(ctx, d.Steps)
	}
	return nil
}

func (r *run) checkpoint() (string, error) {
	d := r.task.trainer()
	rngState, err := r.rng.MarshalBinary()
	if err != nil {
		return "", err
	}
	last := float32(0)
	if n := len(r.result.Losses); n > 0 {
		last = r.result.Losses[n-1]
	}
	path, err := saveCheckpoint(r.spec.Run.OutputDir, d.Steps, r.task.groups(), State{Step: d.Steps, RNG: rngState, Data: r.dataPos, Loss: last, Scaler: scalerState(d)}, r.spec)
	if err != nil {
		return "", err
	}
	r.result.Checkpoint = path
	return path, pruneCheckpoints(r.spec.Run.OutputDir, r.spec.Run.CheckpointsKeep)
}
