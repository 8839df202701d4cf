package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/golcm/golcm/datasets"
)

func runData(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("data: want a sub-command: inspect or convert (see -h)")
	}
	switch args[0] {
	case "inspect":
		return runDataInspect(args[1:])
	case "convert":
		return runDataConvert(args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Println("usage:\n  go run ./experiments data inspect [flags] SOURCE...\n  go run ./experiments data convert -out PATTERN [flags] SOURCE...")
		return nil
	}
	return fmt.Errorf("data: unknown sub-command %q (want inspect or convert)", args[0])
}

// dataFlags are the source flags shared by inspect and convert: they fill the datasets.Config an
// experiment's [data] section is, starting from its defaults, so a flag and a key mean the same.
func dataFlags(fs *flag.FlagSet) *datasets.Config {
	cfg := datasets.DefaultConfig()
	fs.StringVar(&cfg.Format, "format", cfg.Format, "source format: auto, webdataset, parquet or imagefolder (data.format)")
	fs.IntVar(&cfg.Resolution, "resolution", cfg.Resolution, "training resolution the samples are resized and cropped to (data.resolution)")
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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./experiments data convert -out PATTERN [flags] SOURCE...\n\nWrites an image folder or parquet files as WebDataset tar shards.")
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
	cfg.Sources = fs.Args()
	stats, err := datasets.ConvertToWebDataset(*cfg, *out, *per)
	if err != nil {
		return err
	}
	fmt.Println(stats.String())
	return nil
}
