// Command experiments is golcm's command line: it distills a Stable
// Diffusion teacher into a latent consistency model from a TOML experiment
// (the default), samples images, makes a tiny teacher, inspects data and
// benchmarks. It parses flags, calls the library packages and exits with a
// clear message; the work is done elsewhere.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `golcm: latent consistency distillation for Stable Diffusion.

usage:
  go run ./experiments [train] -f EXPERIMENT.toml [-set section.key=value ...] [-print-config]
  go run ./experiments sample -model DIR -prompt TEXT [-steps 4 -guidance 8.5 -seed 0 -out out.png]
  go run ./experiments init-model -arch tiny -out DIR
  go run ./experiments data inspect SPEC...
  go run ./experiments data convert -out PATTERN SOURCE...
  go run ./experiments data cache -f EXPERIMENT.toml    (encode the data once for data.cache)
  go run ./experiments bench [-only small,step]
  go run ./experiments export -checkpoint RUN/checkpoints/step-N [-out DIR]
  go run ./experiments lora convert -in FILE -base MODEL -to kohya -out FILE
  go run ./experiments lora fuse -in FILE -base MODEL -out DIR
  go run ./experiments classifier -out DIR [-train IMAGES.idx -test IMAGES.idx -steps 2000]
  go run ./experiments eval -teacher DIR [-student DIR] [-lora FILE] [-classifier DIR] -out DIR
  go run ./experiments eval check -report DIR/eval.json -assert "lcm/lcm/4 latent_rmse < 0.5"

Commands: train (the default), sample, init-model, data, bench, export, lora, classifier, eval.
Run any command with -h for its flags.
`

func main() {
	err := run(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "golcm:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "train":
			return runTrain(args[1:])
		case "sample":
			return runSample(args[1:])
		case "init-model":
			return runInitModel(args[1:])
		case "data":
			return runData(args[1:])
		case "bench":
			return runBench(args[1:])
		case "lora":
			return runLoRA(args[1:])
		case "export":
			return runExport(args[1:])
		case "classifier":
			return runClassifier(args[1:])
		case "eval":
			return runEval(args[1:])
		case "help", "-h", "-help", "--help":
			return runTrain([]string{"-h"}) // the usage, then the flags of train, the default command
		}
	}
	return runTrain(args)
}
