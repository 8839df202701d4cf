package main

import (
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/golcm/golcm/models/pipeline"
)

// initArchs are the pipelines init-model can write, by -arch name.
var initArchs = map[string]func(dir string, seed uint64) error{
	"tiny":    pipeline.InitTiny,
	"fashion": pipeline.InitFashion,
}

func runInitModel(args []string) error {
	fs := flag.NewFlagSet("init-model", flag.ContinueOnError)
	arch := fs.String("arch", "tiny", "architecture to write (choices: "+strings.Join(archNames(), ", ")+")")
	out := fs.String("out", "", "folder to write the diffusers pipeline into: new, empty, or an earlier pipeline (required)")
	seed := fs.Uint64("seed", 0, "seed of the random weights; the same seed writes byte-identical files")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: go run ./experiments init-model [-arch tiny|fashion] -out DIR [-seed N]

Writes a randomly initialised Stable Diffusion pipeline in the diffusers layout (model_index.json,
unet, vae, text_encoder, tokenizer, scheduler): "tiny" is a teacher small enough to distill on a CPU
(64×64 images, ×8 VAE); "fashion" is the starting point of a teacher and VAE trained from scratch on
Fashion-MNIST at 32×32 (×4 VAE, 8×8×4 latents, a small random CLIP text encoder).`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("init-model: unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return fmt.Errorf("init-model: -out is required")
	}
	write, ok := initArchs[*arch]
	if !ok {
		return fmt.Errorf("init-model: -arch %q unknown (choices: %s)", *arch, strings.Join(archNames(), ", "))
	}
	if err := write(*out, *seed); err != nil {
		return err
	}
	fmt.Printf("wrote a %s pipeline (seed %d) to %s\n", *arch, *seed, *out)
	return nil
}

func archNames() []string {
	names := make([]string, 0, len(initArchs))
	for n := range initArchs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
