package datasets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// CacheSample is one sample as a latent cache encodes it: its unflipped crop, the crop of the
// mirrored image when the data flips (the crop a flipped draw gives, which is not the unflipped one
// mirrored when the margin is odd), and every caption it may draw.
type CacheSample struct {
	Key                  string // Sample.CacheKey
	Captions             []string
	OriginalH, OriginalW int
	CropTop, CropLeft    int // the same for both flips (the crop is centred)
	Height, Width        int // the output size: the resolution or the sample's bucket
	Pixels               []float32
	Flipped              []float32 // nil unless Config.RandomFlip
}

// CachePass reads every sample once, in source order, for a latent cache. Next, Undecodable,
// Position and Close are meant for one goroutine.
type CachePass struct{ l *Loader }

// NewCachePass opens cfg for one pass in source order (no shuffling), resuming after pos (the zero
// Position: from the start). A cache holds one crop per sample, so cfg must crop the centre.
func NewCachePass(cfg Config, pos Position) (*CachePass, error) {
	if !cfg.CenterCrop {
		return nil, fmt.Errorf("datasets: a cache holds one crop per sample: center_crop must be true (random crops differ every epoch)")
	}
	flip := cfg.RandomFlip
	cfg.ShuffleBuffer, cfg.Epochs, cfg.BatchSize, cfg.RandomFlip = 0, 1, 1, false
	l, err := openAt(cfg, pos, loadCache, func(l *Loader) { l.bothFlips = flip })
	if err != nil {
		return nil, err
	}
	return &CachePass{l: l}, nil
}

// Next returns the next usable sample, or io.EOF after the last.
func (c *CachePass) Next(ctx context.Context) (*CacheSample, error) {
	b, err := c.l.Next(ctx)
	if err != nil {
		return nil, err
	}
	s := b.Samples[0]
	return &CacheSample{Key: s.CacheKey(), Captions: s.candidates, OriginalH: s.OriginalH, OriginalW: s.OriginalW,
		CropTop: s.CropTop, CropLeft: s.CropLeft, Height: b.Height, Width: b.Width, Pixels: b.Pixels, Flipped: s.flipped}, nil
}

// Undecodable returns the keys of the samples whose image did not decode, taken since the last call:
// those before the sample Next returned last.
func (c *CachePass) Undecodable() []string {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	keys := c.l.cacheDrops
	c.l.cacheDrops = nil
	return keys
}

// Position is where a resumed pass continues: right after the last sample Next returned.
func (c *CachePass) Position() Position { return c.l.Position() }

// Stats are the pass's counters.
func (c *CachePass) Stats() Stats { return c.l.Stats() }

// Close stops the pass's reader and workers.
func (c *CachePass) Close() error { return c.l.Close() }

// SourcesFingerprint identifies the samples cfg reads, for a latent cache's settings: the expanded
// shard list, the format, and the columns and metadata fields read.
func (c Config) SourcesFingerprint() (string, error) {
	c, err := c.withDefaults()
	if err != nil {
		return "", err
	}
	shards, format, err := expandSources(c.Sources, c.Format)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s %s %s\n%s", format, c.ImageColumn, c.CaptionColumn, c.WidthField, c.HeightField,
		c.WatermarkField, strings.Join(shards, "\n"))
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
