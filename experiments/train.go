package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/golcm/golcm/experiments/runner"
	"github.com/golcm/golcm/experiments/spec"
)

// setFlags collects repeated -set section.key=value flags.
type setFlags []string

func (s *setFlags) String() string     { return fmt.Sprint(*s) }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func runTrain(args []string) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	file := fs.String("f", "", "experiment TOML file; looked up as given, then in experiments/ (e.g. -f tiny.toml); its task key says what it trains: lcd (distillation, the default), diffusion (a teacher UNet) or vae")
	var sets setFlags
	fs.Var(&sets, "set", "override one key, section.key=value (repeatable), e.g. -set optim.lr=5e-5")
	printConfig := fs.Bool("print-config", false, "print the fully resolved experiment as TOML and exit")
	noProgress := fs.Bool("no-progress", false, "do not draw the progress bar (metrics still go to metrics.jsonl)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage+"\nflags of a training run:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (use -f FILE for the experiment; see -h)", fs.Arg(0))
	}
	path := ""
	if *file != "" {
		var err error
		if path, err = spec.FindFile(*file); err != nil {
			return err
		}
	} else if !*printConfig && len(sets) == 0 {
		fs.Usage()
		return errors.New("no experiment given: use -f FILE (try -f tiny.toml)")
	}
	s, err := spec.Load(path, sets)
	if err != nil {
		return err
	}
	if *printConfig {
		data, err := s.TOML()
		if err != nil {
			return err
		}
		_, err = os.Stdout.Write(data)
		return err
	}
	// Ctrl-C and SIGTERM end the run after the current step, with a
	// checkpoint; a second signal kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	_, err = runner.Run(ctx, s, runner.Options{NoProgress: *noProgress})
	return err
}
