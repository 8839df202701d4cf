package datasets

import (
	"fmt"
	"runtime"
	"time"
)

// Config describes one data pipeline. The zero value of every field means its default, stated in the
// field's comment; withDefaults is the one place those defaults are applied.
type Config struct {
	// Sources lists shard specs: local paths, globs ("data/*.tar"), brace ranges
	// ("data/{00000..01099}.tar", "{a,b}"), "pipe:CMD" (the stdout of `sh -c CMD`), http(s) URLs and
	// directories. One entry may hold several specs separated by "::", as WebDataset allows.
	Sources []string
	// Format is "auto" (default: from extensions and directory contents), "webdataset", "parquet" or
	// "imagefolder".
	Format string

	// Resolution is the side of the square output image in pixels. Default 512.
	Resolution int
	// CenterCrop crops the centre of the resized image instead of a random window.
	CenterCrop bool
	// RandomFlip mirrors half of the images horizontally.
	RandomFlip bool
	// Interpolation is the resize filter: "bilinear" (default), "bicubic", "lanczos", "box", "hamming"
	// or "nearest", each computed as PIL's Image.resize computes it.
	Interpolation string

	// BatchSize is the number of samples per batch. Default 1.
	BatchSize int
	// Workers is the number of goroutines decoding and transforming images. Default GOMAXPROCS.
	Workers int
	// ShuffleBuffer is the number of samples the shuffle buffer holds; 0 or 1 keeps the source order
	// (and the shard order) unshuffled.
	ShuffleBuffer int
	// Seed fixes the shard order of every epoch, the shuffle-buffer draws, crops, flips and the choice
	// among several captions.
	Seed int64
	// Epochs stops the loader with io.EOF after this many passes; 0 repeats forever.
	Epochs int

	// ImageColumn is the parquet column holding image bytes (binary, or a struct with a "bytes" field).
	// Default "image".
	ImageColumn string
	// CaptionColumn is the parquet column (string or list of strings) and the metadata.jsonl field of an
	// image folder holding the caption. Default "text".
	CaptionColumn string

	// MinWidth and MinHeight drop WebDataset and image-folder samples whose JSON metadata gives a
	// smaller WidthField / HeightField (a missing field counts as 0, as the diffusers LCM
	// WebdatasetFilter does). 0 disables.
	MinWidth, MinHeight int
	// MaxWatermark drops samples whose metadata WatermarkField exceeds it (a missing field counts as
	// 1.0, as in diffusers). 0 disables.
	MaxWatermark float64
	// WidthField, HeightField and WatermarkField name the metadata fields the filters read. Defaults
	// "original_width", "original_height" and "pwatermark" (LAION / img2dataset names).
	WidthField, HeightField, WatermarkField string

	// MaxConsecutiveDrops stops the loader with an error, showing the drop counts, after this many
	// samples in a row were dropped. Default 1000.
	MaxConsecutiveDrops int
	// ReadTimeout fails a pipe: or http(s) shard that delivers no byte for this long. Default 2 minutes.
	ReadTimeout time.Duration
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

// withDefaults returns c with every zero field set to its default and checks the result.
func (c Config) withDefaults() (Config, error) {
	if c.Format == "" {
		c.Format = FormatAuto
	}
	if c.Resolution == 0 {
		c.Resolution = 512
	}
	if c.Interpolation == "" {
		c.Interpolation = "bilinear"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.ImageColumn == "" {
		c.ImageColumn = "image"
	}
	if c.CaptionColumn == "" {
		c.CaptionColumn = "text"
	}
	if c.WidthField == "" {
		c.WidthField = "original_width"
	}
	if c.HeightField == "" {
		c.HeightField = "original_height"
	}
	if c.WatermarkField == "" {
		c.WatermarkField = "pwatermark"
	}
	if c.MaxConsecutiveDrops == 0 {
		c.MaxConsecutiveDrops = 1000
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 2 * time.Minute
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
	}{{"resolution", c.Resolution}, {"batch_size", c.BatchSize}, {"workers", c.Workers},
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
	if len(c.Sources) == 0 {
		return c, fmt.Errorf("datasets config: no sources")
	}
	return c, nil
}

// filtersOn reports whether any metadata filter is enabled.
func (c Config) filtersOn() bool { return c.MinWidth > 0 || c.MinHeight > 0 || c.MaxWatermark > 0 }
