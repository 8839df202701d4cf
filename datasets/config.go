package datasets

import (
	"fmt"
	"runtime"
	"time"
)

// Config describes one data pipeline. It is also the [data] section of an experiment file (the
// toml tags are its keys; experiments/spec embeds it), so each key is defined, documented and
// defaulted here once. DefaultConfig holds every default; a zero field whose zero has no meaning of
// its own (format, resolution, batch size, column and field names, drop limit, read timeout) is read
// as its default, so Config{Sources: ...} works as a literal. Seed, Epochs and ReadTimeout are not
// experiment keys: the runner sets Seed from run.seed.
type Config struct {
	// Sources are shard specs: local paths, globs ("data/*.tar"), brace ranges
	// ("data/{00000..01099}.tar", "{a,b}"), "pipe:CMD" (the stdout of `sh -c CMD`), http(s) URLs and
	// folders. One entry may hold several specs separated by "::", as WebDataset allows.
	// Default [] (none).
	Sources []string `toml:"sources"`
	// Format is "auto" (from file extensions and folder contents), "webdataset" (tar shards:
	// jpg/png/jpeg/webp + txt/text/caption + json), "parquet" (image bytes and caption columns) or
	// "imagefolder" (images with a metadata.jsonl). Default "auto".
	Format string `toml:"format"`

	// Resolution is the square training size in pixels: the shorter side is resized to it, then
	// cropped (experiments also need a multiple of 8, the VAE factor). Default 512 (the SDXL scripts
	// use 1024).
	Resolution int `toml:"resolution"`
	// Buckets turns on multi-aspect training: a list of "WIDTHxHEIGHT" sizes (["1024x1024",
	// "1152x896", "896x1152"]) or ["auto"], the set for the area resolution² with sides multiples of
	// bucket_step and aspect ratios from 1:4 to 4:1 (SDXL's training buckets at resolution 1024).
	// Each sample goes to the bucket nearest its aspect ratio, is resized to cover it and cropped to
	// it (center_crop and random_flip apply); each batch holds samples of one bucket. Default [] (off:
	// square resolution crops).
	Buckets []string `toml:"buckets"`
	// BucketStep is the multiple of which the sides of generated ("auto") buckets are. Default 64.
	BucketStep int `toml:"bucket_step"`
	// CenterCrop crops the center instead of a random window. diffusers' WebDataset scripts accept
	// and ignore the flag; golcm honours it for every format. Default false.
	CenterCrop bool `toml:"center_crop"`
	// RandomFlip flips images horizontally with probability 0.5 (also honoured for every format).
	// Default false.
	RandomFlip bool `toml:"random_flip"`
	// Interpolation is the resize filter, computed as PIL's: "bilinear", "bicubic", "lanczos", "box",
	// "hamming" or "nearest" (--interpolation_type's choices but nearest_exact). Default "bilinear".
	Interpolation string `toml:"interpolation"`

	// BatchSize is the number of images per (micro-)batch, as the scripts' --train_batch_size.
	// Default 16.
	BatchSize int `toml:"batch_size"`
	// Workers is the number of parallel decoders; 0 uses one per CPU (GOMAXPROCS). Default 0.
	Workers int `toml:"workers"`
	// ShuffleBuffer is the size of the sample shuffle buffer; 0 or 1 keeps the stream (and shard)
	// order. Default 1000.
	ShuffleBuffer int `toml:"shuffle_buffer"`
	// Seed fixes the shard order of every epoch, the shuffle-buffer draws, crops, flips and the choice
	// among several captions.
	Seed int64 `toml:"-"`
	// Epochs stops the loader with io.EOF after this many passes; 0 repeats forever.
	Epochs int `toml:"-"`

	// ImageColumn is the parquet column holding image bytes (or a {bytes, path} struct).
	// Default "image".
	ImageColumn string `toml:"image_column"`
	// CaptionColumn is the parquet column (and image-folder metadata.jsonl field) holding the
	// caption, a string or a list of strings. Default "text".
	CaptionColumn string `toml:"caption_column"`

	// MinWidth drops samples whose JSON metadata gives a width_field smaller than this (a missing
	// field counts as 0, as diffusers' WebdatasetFilter; the SDXL scripts use 700); 0 turns it
	// off. While any of min_width, min_height, max_watermark is on, samples without JSON metadata
	// are dropped. Default 0.
	MinWidth int `toml:"min_width"`
	// MinHeight is min_width for height_field. Default 0.
	MinHeight int `toml:"min_height"`
	// MaxWatermark drops samples whose JSON watermark_field exceeds it (a missing value counts as
	// 1, as in diffusers; the SDXL scripts use 0.5); 0 turns it off. Default 0.
	MaxWatermark float64 `toml:"max_watermark"`
	// WidthField is the JSON metadata field min_width reads: LAION's "original_width" (as the SD
	// scripts' unused filter), or "width" as the SDXL scripts' filter. Default "original_width".
	WidthField string `toml:"width_field"`
	// HeightField is the JSON metadata field min_height reads. Default "original_height".
	HeightField string `toml:"height_field"`
	// WatermarkField is the JSON metadata field max_watermark reads (LAION / img2dataset's name).
	// Default "pwatermark".
	WatermarkField string `toml:"watermark_field"`

	// DropEmptyCaptions drops samples whose captions are all empty or blank (counted as
	// empty_caption); by default they are kept, as the diffusers scripts keep them, and counted in
	// Stats.EmptyCaptions. Default false.
	DropEmptyCaptions bool `toml:"drop_empty_captions"`

	// MaxConsecutiveDrops is how many samples in a row may be dropped (undecodable or filtered)
	// before the loader fails, showing the drop counts, so a dead source or an impossible filter
	// stops the run. Default 1000.
	MaxConsecutiveDrops int `toml:"max_consecutive_drops"`
	// ReadTimeout fails a pipe: or http(s) shard that delivers no byte for this long. Default 2 minutes.
	ReadTimeout time.Duration `toml:"-"`
}

// DefaultConfig returns every default of Config (no sources).
func DefaultConfig() Config {
	return Config{
		Format:              FormatAuto,
		Resolution:          512,
		BucketStep:          64, // SDXL's buckets
		Interpolation:       "bilinear",
		BatchSize:           16, // diffusers' LCD scripts' --train_batch_size
		ShuffleBuffer:       1000,
		ImageColumn:         "image",
		CaptionColumn:       "text",
		WidthField:          "original_width",
		HeightField:         "original_height",
		WatermarkField:      "pwatermark",
		MaxConsecutiveDrops: 1000,
		ReadTimeout:         2 * time.Minute,
	}
}

// Formats and filters accepted by Config.
const (
	FormatAuto        = "auto"
	FormatWebDataset  = "webdataset"
	FormatParquet     = "parquet"
	FormatImageFolder = "imagefolder"
	// FormatIDX (MNIST-style IDX images and labels) is a conversion source only: see
	// ConvertIDXToWebDataset.
	FormatIDX = "idx"
)

// withDefaults returns c with every zero field whose zero means "default" set from DefaultConfig
// (and Workers 0 resolved to GOMAXPROCS), and checks the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	for _, f := range []struct {
		field *string
		def   string
	}{{&c.Format, d.Format}, {&c.Interpolation, d.Interpolation}, {&c.ImageColumn, d.ImageColumn},
		{&c.CaptionColumn, d.CaptionColumn}, {&c.WidthField, d.WidthField}, {&c.HeightField, d.HeightField},
		{&c.WatermarkField, d.WatermarkField}} {
		if *f.field == "" {
			*f.field = f.def
		}
	}
	for _, f := range []struct{ field, def *int }{{&c.Resolution, &d.Resolution}, {&c.BatchSize, &d.BatchSize}, {&c.BucketStep, &d.BucketStep},
		{&c.MaxConsecutiveDrops, &d.MaxConsecutiveDrops}} {
		if *f.field == 0 {
			*f.field = *f.def
		}
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	switch c.Format {
	case FormatAuto, FormatWebDataset, FormatParquet, FormatImageFolder:
	case FormatIDX:
		return c, fmt.Errorf("datasets config: format idx is a conversion source; convert it to WebDataset shards first (go run ./experiments data convert -format idx)")
	default:
		return c, fmt.Errorf("datasets config: format %q, want auto, webdataset, parquet or imagefolder", c.Format)
	}
	if _, err := filterNamed(c.Interpolation); err != nil {
		return c, fmt.Errorf("datasets config: %w", err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"resolution", c.Resolution}, {"batch_size", c.BatchSize}, {"workers", c.Workers}, {"bucket_step", c.BucketStep},
		{"max_consecutive_drops", c.MaxConsecutiveDrops}} {
		if f.v < 1 {
			return c, fmt.Errorf("datasets config: %s is %d, want at least 1", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"shuffle_buffer", c.ShuffleBuffer}, {"epochs", c.Epochs}, {"min_width", c.MinWidth},
		{"min_height", c.MinHeight}} {
		if f.v < 0 {
			return c, fmt.Errorf("datasets config: %s is %d, want 0 or more", f.name, f.v)
		}
	}
	if c.MaxWatermark < 0 {
		return c, fmt.Errorf("datasets config: max_watermark is %g, want 0 (off) or more", c.MaxWatermark)
	}
	if _, err := c.bucketSizes(); err != nil {
		return c, err
	}
	if len(c.Sources) == 0 {
		return c, fmt.Errorf("datasets config: no sources")
	}
	return c, nil
}

// filtersOn reports whether any metadata filter is enabled.
func (c Config) filtersOn() bool { return c.MinWidth > 0 || c.MinHeight > 0 || c.MaxWatermark > 0 }
