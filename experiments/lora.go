package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/safetensors"
)

const loraUsage = `usage:
  go run ./experiments lora convert -in FILE -base MODEL -to FORMAT -out FILE [-dtype F32]
  go run ./experiments lora fuse -in FILE -base MODEL -out DIR [-variant fp16]

convert rewrites a LoRA file (any layout golcm reads: diffusers, PEFT, kohya, old diffusers) in
another layout: diffusers (diffusers' load_lora_weights), kohya (kohya-ss, A1111, ComfyUI) or
diffusers-old. fuse adds the LoRA into the base UNet, W + (alpha/r)·B·A, and writes DIR as a UNet
folder (config.json + diffusion_pytorch_model.safetensors, float32) that diffusers'
UNet2DConditionModel.from_pretrained and golcm load without the LoRA.
MODEL is the base the LoRA was trained on: a pipeline folder, a UNet folder or a model id in the
Hugging Face cache (its UNet's layer shapes tell which keys are which).`

func runLoRA(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Println(loraUsage)
		if len(args) == 0 {
			return fmt.Errorf("lora: name a command: convert or fuse")
		}
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("lora "+cmd, flag.ContinueOnError)
	in := fs.String("in", "", "LoRA safetensors file to read (required)")
	base := fs.String("base", "", "base model the LoRA is for: pipeline folder, UNet folder or model id (required)")
	revision := fs.String("revision", "", "hub revision of -base (default main)")
	variant := fs.String("variant", "", `weight variant of -base to load, e.g. "fp16" (default: full precision)`)
	out := fs.String("out", "", "convert: the file to write; fuse: the UNet folder to write (required)")
	var to, dtype *string
	switch cmd {
	case "convert":
		to = fs.String("to", "", "layout to write: "+strings.Join(spec.LoRAFormats, ", ")+" (required)")
		dtype = fs.String("dtype", "F32", "tensor type to write: F32, F16 or BF16")
	case "fuse":
	default:
		fmt.Println(loraUsage)
		return fmt.Errorf("lora: unknown command %q (want convert or fuse)", cmd)
	}
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), loraUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("lora %s: unexpected arguments %q", cmd, fs.Args())
	case *in == "" || *base == "" || *out == "":
		return fmt.Errorf("lora %s: -in, -base and -out are required", cmd)
	}
	if st, err := os.Stat(*in); err != nil || st.IsDir() {
		return fmt.Errorf("lora %s: -in %s: not a file", cmd, *in)
	}
	m, err := pipeline.LoadUNet(*base, *revision, *variant)
	if err != nil {
		return fmt.Errorf("lora %s: -base: %w", cmd, err)
	}
	a, err := lora.Read(*in, m.Config.ParamShapes())
	if err != nil {
		return err
	}
	if cmd == "convert" {
		f, err := lora.ParseFormat(*to)
		if err != nil {
			return fmt.Errorf("lora convert: -to: %w", err)
		}
		dt := safetensors.DType(strings.ToUpper(*dtype))
		if dt != safetensors.F32 && dt != safetensors.F16 && dt != safetensors.BF16 {
			return fmt.Errorf("lora convert: -dtype %q, want F32, F16 or BF16", *dtype)
		}
		if abs(*in) == abs(*out) {
			return fmt.Errorf("lora convert: -out %s is the -in file; write another", *out)
		}
		if err := a.Write(*out, f, dt); err != nil {
			return err
		}
		fmt.Printf("wrote %s (%s, %d modules)\n", *out, f, len(a.Modules))
		return nil
	}
	if err := a.Fuse(m.Weights); err != nil {
		return err
	}
	if err := m.Save(*out); err != nil {
		return fmt.Errorf("lora fuse: %w", err)
	}
	fmt.Printf("wrote %s: the base UNet with %d LoRA modules fused in\n", *out, len(a.Modules))
	return nil
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
