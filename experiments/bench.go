package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/models/vae"
)

// benchKind is what a benchmark row runs.
type benchKind string

const (
	kindForward  benchKind = "forward"
	kindBackward benchKind = "backward"
	kindStep     benchKind = "step"
	kindLoRA     benchKind = "lora"
	kindSample   benchKind = "sample"
	kindCache    benchKind = "cache" // training from images against from a latent cache (benchcache.go)
	// kindCacheLoRA is kindCache for an LCM-LoRA: the SD 1.5-sized run a
	// machine without 16 GiB for full distillation's state can make.
	kindCacheLoRA benchKind = "cache-lora"
)

// benchCase is one row of the benchmark table.
type benchCase struct {
	preset      string
	batch, size int // size is the latent side
	kind        benchKind
	checkpoint  bool // gradient checkpointing
	noDonation  bool // a step row that keeps its old weights (-donation)
	// optIn rows run only when -only names their id: an SD 1.5 LoRA step
	// holds the activations of three UNet passes and a backward, sized for
	// a GPU's memory, not a 2-core machine's.
	optIn bool
	// bf16: run.mixed_precision = "bf16": the frozen UNet (a forward
	// row's, a LoRA step's base) is stored in bfloat16 and the UNet passes
	// compute in it.
	bf16 bool
}

// id names the row for -only: preset-kind, e.g. small-step.
func (c benchCase) id() string {
	if c.bf16 {
		return c.preset + "-" + string(c.kind) + "-bf16"
	}
	return c.preset + "-" + string(c.kind)
}

// what is the row's description; the rows the old bench had keep its
// wording, so that compare.sh matches them across builds.
func (c benchCase) what() string {
	switch c.kind {
	case kindBackward:
		return "forward+backward"
	case kindStep:
		return "distill step (full" + c.stepTags() + ")"
	case kindLoRA:
		return "distill step (lora" + c.stepTags() + ")"
	case kindSample:
		return "sample 4-step+tiny VAE"
	case kindCache:
		return "train: images vs cache"
	case kindCacheLoRA:
		return "train lora: images vs cache"
	}
	if c.bf16 {
		return "forward (bf16)"
	}
	return "forward"
}

// stepTags are a step row's variants: ",ckpt", ",bf16", ",nodonate".
func (c benchCase) stepTags() string {
	tags := ""
	if c.checkpoint && c.kind == kindStep {
		tags += ",ckpt"
	}
	if c.bf16 {
		tags += ",bf16"
	}
	if c.noDonation {
		tags += ",nodonate"
	}
	return tags
}

var benchCases = []benchCase{
	{preset: "tiny", batch: 2, size: 8, kind: kindForward},
	{preset: "tiny", batch: 2, size: 8, kind: kindBackward},
	{preset: "tiny", batch: 2, size: 8, kind: kindStep},
	{preset: "tiny", batch: 2, size: 8, kind: kindLoRA},
	{preset: "small", batch: 4, size: 32, kind: kindForward},
	{preset: "small", batch: 4, size: 32, kind: kindBackward},
	{preset: "small", batch: 4, size: 32, kind: kindStep},
	{preset: "small", batch: 4, size: 32, kind: kindLoRA},
	{preset: "small", batch: 4, size: 32, kind: kindLoRA, bf16: true},
	{preset: "sd15", batch: 1, size: 64, kind: kindForward},
	{preset: "sd15", batch: 1, size: 64, kind: kindForward, bf16: true},
	{preset: "sd15", batch: 1, size: 64, kind: kindStep, checkpoint: true},
	{preset: "sd15", batch: 1, size: 64, kind: kindSample},
	{preset: "sd15", batch: 1, size: 64, kind: kindLoRA, checkpoint: true, optIn: true},
	{preset: "sd15", batch: 1, size: 64, kind: kindLoRA, checkpoint: true, optIn: true, bf16: true},
	// Whole runs, a few minutes each on a CPU: opt-in.
	{preset: "small", batch: 1, size: 32, kind: kindCache, optIn: true},
	{preset: "sd15", batch: 1, size: 64, kind: kindCache, checkpoint: true, optIn: true},
	{preset: "small", batch: 1, size: 32, kind: kindCacheLoRA, optIn: true},
	{preset: "sd15", batch: 1, size: 64, kind: kindCacheLoRA, checkpoint: true, optIn: true},
}

// selectCases keeps the rows that a comma-separated -only list names: a
// token matches a row's id (small-step), its preset (small) or its kind
// (step); an opt-in row only by its id. A token that matches nothing is an
// error. An empty list is every row but the opt-in ones.
func selectCases(only string) ([]benchCase, error) {
	if strings.TrimSpace(only) == "" {
		var all []benchCase
		for _, c := range benchCases {
			if !c.optIn {
				all = append(all, c)
			}
		}
		return all, nil
	}
	var out []benchCase
	var ids []string
	for _, c := range benchCases {
		ids = append(ids, c.id())
	}
	picked := map[string]bool{}
	for _, tok := range strings.Split(only, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		found := false
		for _, c := range benchCases {
			if tok == c.id() || !c.optIn && (tok == c.preset || tok == string(c.kind)) {
				found = true
				picked[c.id()] = true
			}
		}
		if !found {
			return nil, fmt.Errorf("bench: -only %q: %q matches no row (rows: %s; or a preset or kind of one)",
				only, tok, strings.Join(ids, ", "))
		}
	}
	for _, c := range benchCases {
		if picked[c.id()] {
			out = append(out, c)
		}
	}
	return out, nil
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	only := fs.String("only", "", "comma-separated rows to run, each a row id (small-step), preset (small) or kind (step); default all but the opt-in sd15-lora, sd15-lora-bf16, small-cache, sd15-cache, small-cache-lora and sd15-cache-lora (run only by their ids)")
	batch := fs.Int("batch", 0, "batch size of every row that runs (default: each row's own)")
	repeats := fs.Int("repeats", 3, "timed repetitions after one warm-up run")
	im2col := fs.String("conv", "auto", "convolution lowering: auto (im2col on the Go backend), im2col or native")
	backendName := fs.String("backend", "", "backend to use (default: $GOMLX_BACKEND, else XLA when a PJRT plugin is installed, else go)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (read it with go tool pprof)")
	memBudget := fs.Float64("mem-budget", 8, "GiB a row may need; rows whose weights and optimizer state alone exceed it are skipped, by name")
	memLimit := fs.Float64("mem-limit", 0, "GiB: the Go runtime's soft memory limit for the run (debug.SetMemoryLimit; collect garbage before the heap passes it); 0 keeps $GOMEMLIMIT or none")
	donation := fs.String("donation", "on", "step rows donate their updated weights' buffers: on, off, or both (each step row twice, with and without: donation's own effect on peak_rss in one run)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: golcm bench [flags]\n\n"+
			"Times UNet forward, forward+backward, distillation steps and 4-step sampling with random weights and\n"+
			"prints a table: run time, the products' FLOPs counted from each graph, the rate achieved and its share of\n"+
			"this machine's float32 matmul rate (measured first, same backend), and each row's peak resident memory.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cases, err := selectCases(*only)
	if err != nil {
		return err
	}
	if *batch < 0 {
		return fmt.Errorf("bench: -batch %d: want a positive batch size, or 0 for each row's own", *batch)
	}
	if *batch > 0 {
		for i := range cases {
			cases[i].batch = *batch
		}
	}
	if cases, err = withDonation(cases, *donation); err != nil {
		return err
	}
	if *memLimit < 0 {
		return fmt.Errorf("bench: -mem-limit %g: want GiB above 0, or 0 for $GOMEMLIMIT or none", *memLimit)
	}
	if *memLimit > 0 {
		debug.SetMemoryLimit(int64(*memLimit * (1 << 30)))
	}
	b, choice, err := backend.Default(*backendName)
	if err != nil {
		return err
	}
	fmt.Println(backend.Describe(b, choice))
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("bench: -cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench: -cpuprofile %s: %w", *cpuProfile, err)
		}
		defer pprof.StopCPUProfile()
	}
	opts := nn.ForBackend(choice.Name())
	switch *im2col {
	case "im2col":
		opts.ConvIm2Col = true
	case "native":
		opts.ConvIm2Col = false
	case "auto":
	default:
		return fmt.Errorf("bench: -conv %q is not one of auto, im2col, native", *im2col)
	}
	// The matmul rate is measured before each row and after the last, and
	// the rows are printed against the best: on a machine shared with other
	// work the best is the nearest to what it can do.
	var peak float64
	measure := func() error {
		r, err := matmulRate(b)
		if err != nil {
			return fmt.Errorf("bench: matmul rate: %w", err)
		}
		peak = max(peak, r)
		return nil
	}
	var rows []func(peak float64) string
	for _, c := range cases {
		if err := measure(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "bench: %s\n", c.id())
		row, err := benchOne(b, opts, c, *repeats, *memBudget)
		if err != nil {
			return err
		}
		rows = append(rows, row)
	}
	if err := measure(); err != nil {
		return err
	}
	fmt.Printf("matmul rate: %.1f GFLOP/s (float32 %d×%d·%d×%d, best of 5 before each row and after the last)\n",
		peak/1e9, matmulN, matmulN, matmulN, matmulN)
	if limit := debug.SetMemoryLimit(-1); limit < math.MaxInt64 {
		fmt.Printf("Go memory limit: %.2f GiB (-mem-limit or $GOMEMLIMIT)\n", float64(limit)/(1<<30))
	}
	fmt.Printf("%-6s %-28s %5s %7s %10s %10s %9s %8s %7s %10s\n",
		"unet", "what", "batch", "latent", "compile_s", "run_s", "gflop", "gflop_s", "%mm", "peak_rss")
	for _, row := range rows {
		fmt.Println(row(peak))
	}
	return nil
}

// withDonation applies -donation to the step rows: on keeps them, off
// turns donation off, both adds a row without it after each.
func withDonation(cases []benchCase, donation string) ([]benchCase, error) {
	if donation != "on" && donation != "off" && donation != "both" {
		return nil, fmt.Errorf("bench: -donation %q is not one of on, off, both", donation)
	}
	var out []benchCase
	for _, c := range cases {
		step := c.kind == kindStep || c.kind == kindLoRA
		if !step || donation != "off" {
			out = append(out, c)
		}
		if step && donation != "on" {
			c.noDonation = true
			out = append(out, c)
		}
	}
	return out, nil
}

// matmulN is the side of the square product that measures the machine.
const matmulN = 2048

// matmulRate is the float32 rate of one large product on b, FLOP/s, the
// best of five runs after a warm-up: the roof the rows are measured against.
func matmulRate(b compute.Backend) (float64, error) {
	var best float64
	err := backend.Catch(func() {
		exec, err := NewExec(b, func(x, y *Node) *Node { return MatMul(x, y) })
		if err != nil {
			panic(err)
		}
		defer exec.Finalize()
		rng := rand.New(rand.NewPCG(3, 4))
		x, y := nn.NormalTensor(rng, matmulN, matmulN), nn.NormalTensor(rng, matmulN, matmulN)
		for i := range 6 {
			start := time.Now()
			out, err := exec.Exec(x, y)
			if err != nil {
				panic(err)
			}
			out[0].MustFinalizeAll()
			if i > 0 {
				best = max(best, 2*float64(matmulN)*matmulN*matmulN/time.Since(start).Seconds())
			}
		}
	})
	return best, err
}

// benchOne runs one row and returns its table line for a matmul rate.
func benchOne(b compute.Backend, opts nn.Options, c benchCase, repeats int, budgetGiB float64) (func(peak float64) string, error) {
	if c.kind == kindCache || c.kind == kindCacheLoRA {
		line, err := benchCache(b, c, budgetGiB)
		return func(float64) string { return line }, err
	}
	cfg, _, err := unet.Preset(c.preset)
	if err != nil {
		return nil, err
	}
	if c.kind == kindStep || c.kind == kindLoRA {
		// Full: teacher, student, EMA target and two AdamW moments, float32.
		// LoRA: the base UNet (in bfloat16 for a bf16 row), its adapters'
		// state being small.
		need := 5 * 4 * float64(cfg.NumParams()) / (1 << 30)
		if c.kind == kindLoRA {
			need = 4 * float64(cfg.NumParams()) / (1 << 30)
			if c.bf16 {
				need /= 2
			}
		}
		if need > budgetGiB {
			return func(float64) string {
				return fmt.Sprintf("%-6s %-28s skipped: its weights and optimizer state alone are %.1f GiB, over -mem-budget %.0f GiB",
					c.preset, c.what(), need, budgetGiB)
			}, nil
		}
	}
	opts.GradientCheckpointing = c.checkpoint
	opts.NoDonation = c.noDonation
	opts.Cost = &nn.Cost{}
	resetPeakRSS()
	rng := rand.New(rand.NewPCG(1, 2))
	var run func() error
	var done func()
	switch c.kind {
	case kindStep, kindLoRA:
		run, err = benchStep(b, opts, cfg, c, rng)
	case kindSample:
		run, done, err = benchSample(b, opts, cfg, c, rng)
	default:
		in := unet.RandomInputs(rng, cfg, c.batch, c.size)
		var weights *nn.Weights
		var prog *nn.Program
		if weights, err = nn.RandomWeightsOn(b, cfg.ParamShapes(), 1, 1); err == nil && c.bf16 {
			err = toBF16(c, weights)
			// The whole probe computes in bfloat16: its float32 inputs
			// are cast on entry, its output back to float32.
			opts.ComputeDType = dtypes.BFloat16
		}
		if err == nil {
			prog, err = unet.CompileProbe(b, cfg, weights, opts, c.kind == kindBackward)
		}
		if err == nil {
			done = prog.Finalize
			run = func() error {
				outs, err := prog.Run(in.Sample, in.Timesteps, in.Context)
				for _, o := range outs {
					o.MustFinalizeAll()
				}
				return err
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bench %s: %w", c.id(), err)
	}
	if done != nil {
		defer done()
	}
	start := time.Now()
	if err := run(); err != nil {
		return nil, fmt.Errorf("bench %s: %w", c.id(), err)
	}
	compile := time.Since(start)
	opts.Cost.Reset()
	start = time.Now()
	for range repeats {
		if err := run(); err != nil {
			return nil, fmt.Errorf("bench %s: %w", c.id(), err)
		}
	}
	per := time.Since(start).Seconds() / float64(repeats)
	flops := opts.Cost.FLOPs() / float64(repeats)
	rate := flops / per
	rss := peakRSS()
	return func(peak float64) string {
		return fmt.Sprintf("%-6s %-28s %5d %7s %10.2f %10.3f %9.1f %8.1f %6.0f%% %10s", c.preset, c.what(), c.batch,
			fmt.Sprintf("%dx%d", c.size, c.size), compile.Seconds()-per, per, flops/1e9, rate/1e9, 100*rate/peak, rss)
	}, nil
}

// toBF16 stores a bf16 row's frozen UNet weights in bfloat16, says how
// many bytes that saves, and starts the row's peak memory after it: the
// random weights are drawn in float32 first, and the row measures its
// work, not that transient (which a run's load also has: the weights are
// read as float32, then converted).
func toBF16(c benchCase, w *nn.Weights) error {
	before := w.Bytes()
	if err := w.Convert(dtypes.BFloat16); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: frozen UNet weights %.1f MiB in bfloat16, %.1f MiB in float32\n",
		c.id(), float64(w.Bytes())/(1<<20), float64(before)/(1<<20))
	debug.FreeOSMemory()
	resetPeakRSS()
	return nil
}

// benchStep prepares one full or LoRA distillation step on random weights.
func benchStep(b compute.Backend, opts nn.Options, cfg *unet.Config, c benchCase, rng *rand.Rand) (func() error, error) {
	randn := func(dims ...int) *tensors.Tensor { return nn.NormalTensor(rng, dims...) }
	teacher, err := nn.RandomWeightsOn(b, cfg.ParamShapes(), 1, 1)
	if err != nil {
		return nil, err
	}
	dcfg := lcm.DistillConfig{
		Mode: lcm.Full, Teacher: cfg, PredictionType: lcm.PredictEpsilon,
		Loss: losses.Huber, HuberC: 0.001, MaxGradNorm: 1, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8,
		EMADecay: 0.95, NN: opts,
	}
	if c.bf16 {
		if err := toBF16(c, teacher); err != nil {
			return nil, err
		}
		dcfg.Precision = dtypes.BFloat16
	}
	dim := 256
	var student *nn.Weights
	if c.kind == kindLoRA {
		// The LoRA scripts' default rank 64 and alpha 64.
		adapters, err := lora.New(cfg.ParamShapes(), lora.Config{Rank: 64, Alpha: 64}, 3)
		if err != nil {
			return nil, err
		}
		dcfg.Mode, dcfg.Adapters, dcfg.Student = lcm.LoRA, adapters.Lookup, cfg
		student = adapters.Weights
	} else {
		scfg := *cfg
		scfg.TimeCondProjDim = &dim
		dcfg.Student = &scfg
		if student, err = nn.RandomWeightsOn(b, scfg.ParamShapes(), 2, 1); err != nil {
			return nil, err
		}
	}
	d, err := lcm.NewDistiller(b, dcfg, teacher, student)
	if err != nil {
		return nil, err
	}
	schedule, err := lcm.NewNoiseSchedule(lcm.DefaultSchedulerConfig())
	if err != nil {
		return nil, err
	}
	solver, err := lcm.NewDDIMSolver(schedule, 50)
	if err != nil {
		return nil, err
	}
	index := make([]int64, c.batch)
	u := make([]float32, c.batch)
	for i := range index {
		// Spread evenly over the solver's steps whatever the batch (-batch).
		index[i], u[i] = int64(i*len(solver.Timesteps)/c.batch), float32(i)/float32(c.batch)
	}
	coefs, err := lcm.Coefficients(schedule, solver, lcm.Draws{Index: index, U: u}, 5, 15, 10, dim)
	if err != nil {
		return nil, err
	}
	batch := &lcm.Batch{
		Latents: randn(c.batch, 4, c.size, c.size), Noise: randn(c.batch, 4, c.size, c.size),
		PromptEmbeds: randn(c.batch, 77, cfg.CrossDims[0]), UncondEmbeds: randn(c.batch, 77, cfg.CrossDims[0]),
		Coefs: coefs, LR: 1e-5,
	}
	return func() error { _, err := d.Step(batch); return err }, nil
}

// benchSample prepares 4-step LCM sampling as the sampler runs it: a full
// LCM student (the UNet with a guidance embedding, random weights) at the
// preset's size, one UNet call per step and the LCMScheduler step on the
// host, then the tiny pipeline's VAE decoding the final latents (8×: a
// 64×64 latent is a 512×512 image).
func benchSample(b compute.Backend, opts nn.Options, cfg *unet.Config, c benchCase, rng *rand.Rand) (func() error, func(), error) {
	dim := 256
	scfg := *cfg
	scfg.TimeCondProjDim = &dim
	sw, err := nn.RandomWeightsOn(b, scfg.ParamShapes(), 2, 1)
	if err != nil {
		return nil, nil, err
	}
	student := unet.NewRunner(b, &unet.Model{Config: &scfg, Weights: sw}, opts)
	dir, err := os.MkdirTemp("", "golcm-bench-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	if err := pipeline.InitTiny(dir, 1); err != nil {
		return nil, nil, err
	}
	vm, err := vae.Load(filepath.Join(dir, "vae"), "")
	if err != nil {
		return nil, nil, err
	}
	decoder := vae.NewRunner(b, vm, opts)
	const steps = 4
	dims := []int{c.batch, cfg.InChannels, c.size, c.size}
	size := c.batch * cfg.InChannels * c.size * c.size
	noise := make([][]float32, steps+1)
	for i := range noise {
		if noise[i], _, err = nn.TensorFloat32(nn.NormalTensor(rng, size)); err != nil {
			return nil, nil, err
		}
	}
	context := nn.NormalTensor(rng, c.batch, 77, cfg.CrossDims[0])
	w := make([]float32, c.batch)
	for i := range w {
		w[i] = 7.5 // diffusers' guidance_scale 8.5 minus one
	}
	cond := tensors.FromFlatDataAndDimensions(lcm.GuidanceEmbedding(w, dim), c.batch, dim)
	run := func() error {
		sched, err := lcm.NewLCMScheduler(lcm.DefaultSchedulerConfig())
		if err != nil {
			return err
		}
		if err := sched.SetTimesteps(steps, 0, 1, nil); err != nil {
			return err
		}
		latents := slices.Clone(noise[0])
		var denoised []float32
		for i, t := range sched.Timesteps {
			ts := make([]int64, c.batch)
			for j := range ts {
				ts[j] = t
			}
			out, err := student.Forward(unet.HostInputs{
				Sample:       tensors.FromFlatDataAndDimensions(latents, dims...),
				Timesteps:    tensors.FromFlatDataAndDimensions(ts, c.batch),
				Context:      context,
				TimestepCond: cond,
			})
			if err != nil {
				return err
			}
			eps, _, err := nn.TensorFloat32(out)
			if err != nil {
				return err
			}
			var stepNoise []float32
			if i+1 < len(sched.Timesteps) {
				stepNoise = noise[i+1]
			}
			if latents, denoised, err = sched.Step(eps, latents, t, stepNoise); err != nil {
				return err
			}
		}
		img, err := decoder.DecodeLatents(tensors.FromFlatDataAndDimensions(denoised, dims...), 0)
		if err == nil {
			img.MustFinalizeAll()
		}
		return err
	}
	return run, decoder.Finalize, nil
}

// resetPeakRSS frees what the previous row left and restarts the kernel's
// peak-RSS count (Linux: "5" to clear_refs), so each row reports its own.
func resetPeakRSS() {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS reads the process's peak resident memory (Linux), or "?".
func peakRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%d", &kb)
			return fmt.Sprintf("%.2fGiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}
