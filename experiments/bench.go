package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// benchCase is one row of the benchmark table.
type benchCase struct {
	preset      string
	batch, size int // size is the latent side
	backward    bool
	step        bool // a whole distillation step
	lora        bool // the step trains LoRA adapters (rank 64), not the whole UNet
	// optIn names a row that runs only when -only names it: an SD 1.5
	// distillation step needs a GPU's memory (tens of GiB in float32).
	optIn string
	// torchS is PyTorch's CPU build on a 2-core machine for the same work,
	// the mark golcm is measured against; 0 where there is none.
	torchS float64
}

func runBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	only := fs.String("only", "", "comma-separated rows to run: tiny, small, sd15, step, and the GPU-sized sd15-step, sd15-lora (default: all but those two)")
	batch := fs.Int("batch", 0, "batch size of every row that runs (default: each row's own)")
	repeats := fs.Int("repeats", 3, "timed repetitions after one warm-up run")
	im2col := fs.String("conv", "auto", "convolution lowering: auto (im2col on the Go backend), im2col or native")
	backendName := fs.String("backend", "", "backend to use (default: $GOMLX_BACKEND, else XLA when a PJRT plugin is installed, else go)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (read it with go tool pprof)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: golcm bench [flags]\n\nTimes UNet forward, forward+backward and one distillation step with random weights and prints a table.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
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
	cases := []benchCase{
		{preset: "tiny", batch: 2, size: 8},
		{preset: "tiny", batch: 2, size: 8, backward: true},
		{preset: "tiny", batch: 2, size: 8, step: true},
		{preset: "tiny", batch: 2, size: 8, step: true, lora: true},
		{preset: "small", batch: 4, size: 32, torchS: 0.7},
		{preset: "small", batch: 4, size: 32, backward: true, torchS: 1.7},
		{preset: "small", batch: 4, size: 32, step: true},
		{preset: "sd15", batch: 1, size: 64, torchS: 11},
		{preset: "sd15", batch: 4, size: 64, step: true, optIn: "sd15-step"},
		{preset: "sd15", batch: 4, size: 64, step: true, lora: true, optIn: "sd15-lora"},
	}
	want := map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		if w != "" {
			want[w] = true
		}
	}
	w := os.Stdout
	fmt.Fprintf(w, "%-6s %-22s %5s %7s %10s %10s %10s %10s\n", "unet", "what", "batch", "latent", "compile_s", "run_s", "torch_s", "peak_rss")
	for _, c := range cases {
		if c.optIn != "" && !want[c.optIn] || c.optIn == "" && len(want) > 0 && !want[c.preset] && !(c.step && want["step"]) {
			continue
		}
		if *batch > 0 {
			c.batch = *batch
		}
		if err := benchOne(w, b, opts, c, *repeats); err != nil {
			return err
		}
	}
	return nil
}

func benchOne(w io.Writer, b compute.Backend, opts nn.Options, c benchCase, repeats int) error {
	cfg, _, err := unet.Preset(c.preset)
	if err != nil {
		return err
	}
	what := "forward"
	var run func() error
	rng := rand.New(rand.NewPCG(1, 2))
	in := unet.RandomInputs(rng, cfg, c.batch, c.size)
	switch {
	case c.step:
		what = "distill step (full)"
		if c.lora {
			what = "distill step (lora)"
		}
		run, err = benchStep(b, opts, cfg, c, rng)
		if err != nil {
			return err
		}
	default:
		weights := nn.RandomWeights(cfg.ParamShapes(), 1, 1)
		if c.backward {
			what = "forward+backward"
		}
		prog, err := unet.CompileProbe(b, cfg, weights, opts, c.backward)
		if err != nil {
			return err
		}
		run = func() error {
			_, err := prog.Run(in.Sample, in.Timesteps, in.Context)
			return err
		}
	}
	start := time.Now()
	if err := run(); err != nil {
		return fmt.Errorf("bench %s %s: %w", c.preset, what, err)
	}
	compile := time.Since(start)
	start = time.Now()
	for range repeats {
		if err := run(); err != nil {
			return err
		}
	}
	per := time.Since(start).Seconds() / float64(repeats)
	torch := "-"
	if c.torchS > 0 {
		torch = fmt.Sprintf("%.1f", c.torchS)
	}
	fmt.Fprintf(w, "%-6s %-22s %5d %7s %10.2f %10.3f %10s %10s\n", c.preset, what, c.batch,
		fmt.Sprintf("%dx%d", c.size, c.size), compile.Seconds()-per, per, torch, peakRSS())
	return nil
}

// benchStep prepares one full-distillation step on random weights.
func benchStep(b compute.Backend, opts nn.Options, cfg *unet.Config, c benchCase, rng *rand.Rand) (func() error, error) {
	randn := func(dims ...int) *tensors.Tensor { return nn.NormalTensor(rng, dims...) }
	teacher := nn.RandomWeights(cfg.ParamShapes(), 1, 1)
	dcfg := lcm.DistillConfig{
		Mode: lcm.Full, Teacher: cfg, PredictionType: lcm.PredictEpsilon,
		Loss: losses.Huber, HuberC: 0.001, MaxGradNorm: 1, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8,
		EMADecay: 0.95, NN: opts,
	}
	var student *nn.Weights
	dim := 256
	if c.lora {
		// The LCM-LoRA recipe's adapters; a LoRA student has no guidance embedding.
		adapters, err := lora.New(cfg.ParamShapes(), lora.Config{Rank: 64, Alpha: 64}, 3)
		if err != nil {
			return nil, err
		}
		dcfg.Mode, dcfg.Student, dcfg.Adapters, student, dim = lcm.LoRA, cfg, adapters.Lookup, adapters.Weights, 0
	} else {
		scfg := *cfg
		scfg.TimeCondProjDim = &dim
		dcfg.Student, student = &scfg, nn.RandomWeights(scfg.ParamShapes(), 2, 1)
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
		index[i], u[i] = int64(10*i%50), float32(i)/float32(c.batch) // 50 solver steps
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
