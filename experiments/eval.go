package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/evaluation"
	"github.com/golcm/golcm/models/nn"
)

// intList is a comma-separated list of integers flag.
type intList struct{ p *[]int }

func (l intList) String() string {
	if l.p == nil {
		return ""
	}
	return intsString(*l.p)
}

func (l intList) Set(v string) error {
	xs, err := parseInts(v)
	if err != nil {
		return err
	}
	*l.p = xs
	return nil
}

func runEval(args []string) error {
	if len(args) > 0 && args[0] == "check" {
		return runEvalCheck(args[1:])
	}
	// -f is read first: the file's [eval] values are the defaults the
	// other flags override.
	cfg := evaluation.DefaultConfig()
	if file := flagValue(args, "f"); file != "" {
		var err error
		if cfg, err = evaluation.ReadConfig(file); err != nil {
			return err
		}
	}
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.String("f", "", "TOML file with an [eval] section (teacher, student_steps, output_dir, …: the keys of eval.json's settings, each documented with its default in evaluation/config.go); flags override it")
	fs.StringVar(&cfg.Teacher, "teacher", cfg.Teacher, "teacher diffusers pipeline folder, sampled with DDIM + classifier-free guidance (required)")
	fs.Float64Var(&cfg.TeacherGuidance, "teacher-guidance", cfg.TeacherGuidance, "the teacher's CFG guidance scale")
	fs.Var(intList{&cfg.TeacherSteps}, "teacher-steps", "the teacher's DDIM step counts, comma-separated (empty: only the reference)")
	fs.IntVar(&cfg.ReferenceSteps, "reference-steps", cfg.ReferenceSteps, "the teacher's DDIM steps of the reference sample every row is compared with")
	fs.StringVar(&cfg.Student, "student", cfg.Student, "full LCM pipeline folder (a full distillation's output_dir), sampled with the LCM scheduler")
	fs.Float64Var(&cfg.StudentGuidance, "student-guidance", cfg.StudentGuidance, "the full LCM's guidance scale (it embeds w = guidance - 1)")
	fs.StringVar(&cfg.LoRA, "lora", cfg.LoRA, "LCM-LoRA safetensors file, applied to -lora-base's UNet and sampled with the LCM scheduler")
	fs.StringVar(&cfg.LoRABase, "lora-base", cfg.LoRABase, "pipeline folder the LoRA adapts (default: -teacher)")
	fs.Float64Var(&cfg.LoRAGuidance, "lora-guidance", cfg.LoRAGuidance, "the LCM-LoRA's guidance scale (CFG when > 1)")
	fs.Var(intList{&cfg.StudentSteps}, "student-steps", "the students' LCM step counts, comma-separated")
	fs.BoolVar(&cfg.Undistilled, "undistilled", cfg.Undistilled, "add the teacher's own UNet sampled with the LCM scheduler at -student-steps and -lora-guidance: what the students start from, before distillation")
	var prompts stringList
	fs.Var(&prompts, "prompt", "a prompt; repeat the flag for several (replaces the file's prompts)")
	fs.StringVar(&cfg.PromptsFile, "prompts-file", cfg.PromptsFile, "text file of prompts, one a line (used when no -prompt is given)")
	fs.StringVar(&cfg.PromptTemplate, "prompt-template", cfg.PromptTemplate, `without prompts: one prompt per classifier class, "{label}" its name and "{a}" its article`)
	fs.IntVar(&cfg.SamplesPerPrompt, "samples", cfg.SamplesPerPrompt, "samples per prompt (each from its own initial noise, the same in every row)")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the initial noise and the LCM steps' noise")
	fs.IntVar(&cfg.BatchSize, "batch", cfg.BatchSize, "images sampled per call")
	fs.IntVar(&cfg.Width, "width", cfg.Width, "sample width in pixels (0: the teacher's default)")
	fs.IntVar(&cfg.Height, "height", cfg.Height, "sample height in pixels (0: the teacher's default)")
	fs.StringVar(&cfg.Classifier, "classifier", cfg.Classifier, "classifier folder (go run ./experiments classifier): adds prompt accuracy, and with -real-images the Fréchet distance")
	fs.StringVar(&cfg.RealImages, "real-images", cfg.RealImages, "IDX file of the real images the Fréchet distance is measured to, e.g. "+fashionDir+"t10k-images-idx3-ubyte.gz")
	fs.StringVar(&cfg.RealLabels, "real-labels", cfg.RealLabels, "IDX file of the real labels (default: -real-images with images-idx3 replaced by labels-idx1)")
	fs.IntVar(&cfg.RealLimit, "real-limit", cfg.RealLimit, "use only the first N real images (0: all)")
	fs.StringVar(&cfg.OutputDir, "out", cfg.OutputDir, "output folder: eval.json, grid.png, samples/ (required)")
	backendName := fs.String("backend", "", "backend to use (default: $GOMLX_BACKEND, else XLA when a PJRT plugin is installed, else go)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: go run ./experiments eval -teacher DIR [-student DIR] [-lora FILE] -out DIR [flags]

Samples the same prompts from the same initial noise with the teacher (DDIM + CFG at -teacher-steps
and -reference-steps) and the students (LCM scheduler at -student-steps), and reports per row the
latent RMSE and pixel PSNR to the teacher's reference sample, with -classifier the Fréchet distance
to the real images and the prompt accuracy, and the seconds per image on this machine: a table,
eval.json, and a labelled grid.png.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("eval: unexpected arguments %q (quote the prompt: -prompt \"a cat\")", fs.Args())
	}
	if len(prompts) > 0 {
		cfg.Prompts = prompts
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	b, choice, err := backend.Default(*backendName)
	if err != nil {
		return err
	}
	machine := backend.Describe(b, choice)
	fmt.Println(machine)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := evaluation.Run(ctx, cfg, evaluation.RunOptions{
		Backend: b, NN: nn.ForBackend(choice.Name()), Machine: machine,
		Options: evaluation.Options{Log: os.Stdout, Progress: os.Stderr},
	})
	if err != nil {
		return err
	}
	if err := evaluation.WriteTable(os.Stdout, rep); err != nil {
		return err
	}
	fmt.Println("wrote", filepath.Join(cfg.OutputDir, evaluation.ReportFile), "and", filepath.Join(cfg.OutputDir, evaluation.GridFile))
	return nil
}

// flagValue is the value of -name (or --name, -name=v) in args, before
// the flags are parsed.
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == "" { // "--" ends the flags
			break
		}
	}
	return ""
}
