package main

import (
	"flag"
	"fmt"

	"github.com/golcm/golcm/experiments/runner"
)

func runExport(args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	checkpoint := fs.String("checkpoint", "", "checkpoint folder of a run, e.g. runs/x/checkpoints/step-00000500 (required)")
	out := fs.String("out", "", "folder to write, new or empty (default: <run>/exports/step-N)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: go run ./experiments export -checkpoint DIR [-out DIR]

Writes what the run exports at its end from one of its checkpoints, with the experiment the
checkpoint was made by: for full distillation a self-contained pipeline folder (unet/, unet_target/,
the teacher's text encoders, tokenizers and VAE, an LCMScheduler, model_index.json) that
sample -model and diffusers' from_pretrained load; for LoRA the lora.formats files; for
task = "diffusion" a StableDiffusionPipeline folder (unet/, with the EMA weights under use_ema, and
a DDIMScheduler); for task = "vae" vae/ with the measured scaling_factor.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("export: unexpected arguments %q", fs.Args())
	case *checkpoint == "":
		return fmt.Errorf("export: -checkpoint is required")
	}
	res, err := runner.ExportCheckpoint(*checkpoint, *out, runner.Options{})
	if err != nil {
		return err
	}
	for _, p := range res.Exported {
		fmt.Println("wrote", p)
	}
	return nil
}
