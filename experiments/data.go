package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/experiments/runner"
	"github.com/golcm/golcm/experiments/spec"
)

func runData(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("data: want a sub-command: inspect, convert or cache (see -h)")
	}
	switch args[0] {
	case "inspect":
		return runDataInspect(args[1:])
	case "convert":
		return runDataConvert(args[1:])
	case "cache":
		return runDataCache(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Println("usage:\n  go run ./experiments data inspect [flags] SOURCE...\n  go run ./experiments data convert -out PATTERN [flags] SOURCE...\n  go run ./experiments data cache -f EXPERIMENT.toml [-set key=value ...]")
		return nil
	}
	return fmt.Errorf("data: unknown sub-command %q (want inspect, convert or cache)", args[0])
}

// dataFlags are the source flags shared by inspect and convert: they fill the datasets.Config an
// experiment's [data] section is, starting from its defaults, so a flag and a key mean the same.
func dataFlags(fs *flag.FlagSet) *datasets.Config {
	cfg := datasets.DefaultConfig()
	fs.StringVar(&cfg.Format, "format", cfg.Format, "source format: auto, webdataset, parquet or imagefolder; convert also takes idx (data.format)")
	fs.IntVar(&cfg.Resolution, "resolution", cfg.Resolution, "training resolution the samples are resized and cropped to; idx: the output size, unset keeps the images' size (data.resolution)")
	fs.StringVar(&cfg.Interpolation, "interpolation", cfg.Interpolation, "resize filter: bilinear, bicubic, lanczos, box, hamming or nearest (data.interpolation)")
	fs.StringVar(&cfg.ImageColumn, "image-column", cfg.ImageColumn, "parquet: column holding image bytes or {bytes, path} (data.image_column)")
	fs.StringVar(&cfg.CaptionColumn, "caption-column", cfg.CaptionColumn, "parquet: column holding the caption, a string or list of strings (data.caption_column)")
	fs.IntVar(&cfg.MinWidth, "min-width", cfg.MinWidth, "drop samples whose json width_field is smaller, 0: off (data.min_width)")
	fs.IntVar(&cfg.MinHeight, "min-height", cfg.MinHeight, "drop samples whose json height_field is smaller, 0: off (data.min_height)")
	fs.Float64Var(&cfg.MaxWatermark, "max-watermark", cfg.MaxWatermark, "drop samples whose json watermark probability is larger, 0: off (data.max_watermark)")
	fs.BoolVar(&cfg.DropEmptyCaptions, "drop-empty-captions", cfg.DropEmptyCaptions, "drop samples whose captions are all empty; by default they are kept and counted (data.drop_empty_captions)")
	return &cfg
}

func runDataInspect(args []string) error {
	fs := flag.NewFlagSet("data inspect", flag.ContinueOnError)
	cfg := dataFlags(fs)
	n := fs.Int("n", 64, "samples to read (0: one full pass over the sources)")
	grid := fs.String("grid", "inspect.png", "PNG grid of the first samples with their captions (\"\" for none)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./experiments data inspect [flags] SOURCE...\n\nCounts samples by kind and drop reason and draws a grid of the first ones.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("data inspect: name at least one source (a shard pattern, parquet glob or image folder)")
	}
	cfg.Sources = fs.Args()
	report, err := datasets.Inspect(*cfg, *n, *grid)
	if report.Shards > 0 {
		fmt.Println(report.String())
	}
	if err != nil {
		return err
	}
	// Sources that give no usable sample fail the same way whether the shards are missing or every
	// image in them is broken.
	if report.Stats.Delivered == 0 {
		return fmt.Errorf("data inspect: no usable sample in %d shards (read %d samples, dropped %d; reasons above)",
			report.Shards, report.Stats.Read, report.Stats.Dropped())
	}
	return nil
}

func runDataConvert(args []string) error {
	fs := flag.NewFlagSet("data convert", flag.ContinueOnError)
	cfg := dataFlags(fs)
	out := fs.String("out", "", "output shard pattern with a %d verb, e.g. shards/%05d.tar")
	per := fs.Int("per-shard", 1000, "samples per output shard")
	idx := idxFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: go run ./experiments data convert -out PATTERN [flags] SOURCE...
       go run ./experiments data convert -format idx -labels LABELS.idx1-ubyte[.gz] -out PATTERN [flags] IMAGES.idx3-ubyte[.gz]

Writes an image folder, parquet files or WebDataset shards as WebDataset tar shards; with -format idx,
MNIST-style IDX images and labels as PNG images with one caption per label (Fashion-MNIST's class
names by default; Debian's dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist).`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || !strings.Contains(*out, "%") {
		return fmt.Errorf("data convert: -out must be a shard pattern with a %%d verb, e.g. shards/%%05d.tar (got %q)", *out)
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("data convert: name at least one source")
	}
	if cfg.Format == datasets.FormatIDX {
		return convertIDX(fs, cfg, idx, *out, *per)
	}
	cfg.Sources = fs.Args()
	stats, err := datasets.ConvertToWebDataset(*cfg, *out, *per)
	if err != nil {
		return err
	}
	fmt.Println(stats.String())
	return nil
}

// idxConvertFlags are the flags of data convert -format idx.
type idxConvertFlags struct {
	labels, labelNames, template, fit *string
	limit                             *int
}

func idxFlags(fs *flag.FlagSet) idxConvertFlags {
	return idxConvertFlags{
		labels:     fs.String("labels", "", "idx: the IDX labels file, one label per image (required with -format idx)"),
		labelNames: fs.String("label-names", "", "idx: comma-separated names of labels 0, 1, ... (default Fashion-MNIST's 10 classes)"),
		template:   fs.String("caption-template", datasets.DefaultCaptionTemplate, "idx: caption of every sample; {label} is its label's name, {a} the article a or an"),
		fit:        fs.String("fit", datasets.FitPad, "idx: how images reach -resolution: pad (centred on black) or resize (-interpolation filter)"),
		limit:      fs.Int("limit", 0, "idx: convert only the first N samples (0: all)"),
	}
}

// convertIDX runs data convert -format idx; -resolution left unset keeps the images' size.
func convertIDX(fs *flag.FlagSet, cfg *datasets.Config, f idxConvertFlags, out string, per int) error {
	if fs.NArg() != 1 || *f.labels == "" {
		return fmt.Errorf("data convert -format idx: want one images file and -labels (got %d sources, -labels %q)", fs.NArg(), *f.labels)
	}
	src := datasets.IDXSource{Images: fs.Arg(0), Labels: *f.labels, CaptionTemplate: *f.template, Fit: *f.fit,
		Interpolation: cfg.Interpolation, Limit: *f.limit}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "resolution" {
			src.Resolution = cfg.Resolution
		}
	})
	if *f.labelNames != "" {
		src.LabelNames = strings.Split(*f.labelNames, ",")
	}
	var bar *progressbar.ProgressBar
	src.Progress = func(done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionShowCount(),
				progressbar.OptionSetItsString("sample"), progressbar.OptionShowIts(),
				progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetWidth(20))
		}
		bar.Set(done)
	}
	stats, err := datasets.ConvertIDXToWebDataset(src, out, per)
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		return err
	}
	fmt.Println(stats.String())
	return nil
}

func runDataCache(args []string) error {
	fs := flag.NewFlagSet("data cache", flag.ContinueOnError)
	file := fs.String("f", "", "experiment TOML file (looked up as given, then in experiments/): its model, [data] section and data.cache folder say what to encode and where")
	var sets setFlags
	fs.Var(&sets, "set", "override one key, section.key=value (repeatable), e.g. -set data.cache=caches/sd15")
	perShard := fs.Int("per-shard", 1000, "samples per cache shard file (a killed run loses at most the shard being filled)")
	restart := fs.Bool("restart", false, "discard an unfinished cache's progress and start over (by default it continues after its last shard)")
	noProgress := fs.Bool("no-progress", false, "do not draw the progress bar")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: go run ./experiments data cache -f EXPERIMENT.toml [-set key=value ...] [flags]

Runs the experiment's frozen VAE encoder and text encoder(s) once over its data and writes data.cache:
per sample the VAE posterior (mean and log-variance; of both flips with data.random_flip), the
embeddings of every caption, and for SDXL the pooled embeddings and time ids, with the settings that
made them. A run with the same experiment and data.cache set trains from it without loading the VAE
or the text encoders. Needs data.center_crop = true. Ctrl-C (or a kill) keeps every finished shard;
running the command again continues after the last one.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("data cache: unexpected argument %q (use -f FILE for the experiment; see -h)", fs.Arg(0))
	}
	if *file == "" {
		fs.Usage()
		return errors.New("data cache: no experiment given: use -f FILE")
	}
	path, err := spec.FindFile(*file)
	if err != nil {
		return err
	}
	s, err := spec.Load(path, sets)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := runner.BuildCache(ctx, s, runner.CacheOptions{Options: runner.Options{NoProgress: *noProgress}, PerShard: *perShard, Restart: *restart})
	if rep != nil && err == nil {
		fmt.Println(rep.String())
	}
	return err
}
