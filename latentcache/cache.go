// Package latentcache stores what the frozen encoders make of each training sample (the VAE's latent
// distribution, the prompt embeddings, SDXL's pooled embeddings and time ids) so that training can
// skip the encoders. A cache is a folder of safetensors shards and a manifest naming the settings
// that produced it; Open refuses a cache whose settings differ from the run's, naming each one.
//
// Each sample's arrays are stored by name (the Name* constants, CaptionArray for the text arrays of
// each caption candidate); the posterior is stored, not a drawn latent, so that a run from the cache
// still draws latent = mean + std·ε every step, as the training scripts' latent_dist.sample() does.
//
// A cache is written by `go run ./experiments data cache` (experiments/runner.BuildCache) and read by
// a training run with data.cache set. A writer killed part-way leaves its finished shards and a
// progress file (partial.json) from which Resume continues.
//
// Depends on models/safetensors.
package latentcache

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/golcm/golcm/models/safetensors"
)

// Array names of one sample.
const (
	NameMean           = "mean"   // VAE posterior mean, [latent_channels, h, w]
	NameLogVar         = "logvar" // VAE posterior log-variance (clamped as the VAE does), same shape
	NameFlippedMean    = "flipped/mean"
	NameFlippedLogVar  = "flipped/logvar" // of the mirrored image, when the cache holds both flips
	NamePromptEmbeds   = "prompt_embeds"  // [tokens, dim]
	NamePooled         = "pooled"         // SDXL's pooled text embeddings, [dim]
	NameTimeIDs        = "time_ids"       // SDXL's add_time_ids, [6]
	NameFlippedTimeIDs = "flipped/time_ids"
)

// EmptyPromptKey is the entry holding the encoding of the empty prompt (the unconditional
// embeddings of SD 1.x/2.x, and diffusion's dropped captions); no sample key has this form.
const EmptyPromptKey = ":empty-prompt"

// CaptionArray is the name of array name (NamePromptEmbeds, NamePooled) for caption candidate i of
// a sample: a sample with several captions draws one per epoch, so each is cached.
func CaptionArray(name string, i int) string { return fmt.Sprintf("%s/%d", name, i) }

// Settings are what produced a cache. Each field's json name is the experiment key (or the model part)
// it comes from, so that a refusal names what to change.
type Settings struct {
	VAE          string   `json:"vae"`           // hash of the VAE's weights and config (HashFiles)
	TextEncoders []string `json:"text_encoders"` // hashes of the text encoders and their tokenizers, in order
	// Data fingerprints the expanded sources, the format, and the columns and metadata fields read.
	Data              string   `json:"data.sources/format/columns"`
	Resolution        int      `json:"data.resolution"`
	Buckets           []string `json:"data.buckets"`
	CenterCrop        bool     `json:"data.center_crop"`
	RandomFlip        bool     `json:"data.random_flip"`
	Interpolation     string   `json:"data.interpolation"`
	DropEmptyCaptions bool     `json:"data.drop_empty_captions"`
	MinWidth          int      `json:"data.min_width"`
	MinHeight         int      `json:"data.min_height"`
	MaxWatermark      float64  `json:"data.max_watermark"`
}

// diff lists, one line each, the settings in which s (the cache's) and run differ.
func (s Settings) diff(run Settings) []string {
	var out []string
	a, b := reflect.ValueOf(s), reflect.ValueOf(run)
	for i := 0; i < a.NumField(); i++ {
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			name := strings.Split(a.Type().Field(i).Tag.Get("json"), ",")[0]
			out = append(out, fmt.Sprintf("%s: cache %v, this run %v", name, a.Field(i).Interface(), b.Field(i).Interface()))
		}
	}
	return out
}

// Array is one float32 array of a sample.
type Array struct {
	Shape []int
	Data  []float32
}

// Entry is one sample: its key (unique in the cache), its caption candidates (CaptionArray i holds
// the encoding of Captions[i]) and its arrays by name.
type Entry struct {
	Key      string
	Captions []string
	Arrays   map[string]Array
	// After is where the writer's source continues after this sample; saved (not in the shard)
	// with the shard that ends with it, it is what Resume returns.
	After json.RawMessage
}

// manifest is manifest.json: written last, so a folder without one is an unfinished cache. While
// writing, the same record with After is partial.json.
type manifest struct {
	Settings Settings `json:"settings"`
	Shards   []shard  `json:"shards"`
	// Undecodable are the keys of samples whose image did not decode: a training run drops them as
	// a run from images does, so that both draw the same batches.
	Undecodable []string        `json:"undecodable,omitempty"`
	After       json.RawMessage `json:"after,omitempty"`
}

type shard struct {
	File string   `json:"file"`
	Keys []string `json:"keys"` // in the shard's order
}

const (
	manifestName = "manifest.json"
	partialName  = "partial.json"
)

// Writer writes a cache, perShard samples per shard file.
type Writer struct {
	dir      string
	perShard int
	m        manifest
	seen     map[string]bool
	pending  []Entry
}

// Create starts a cache in dir (created if needed), which must not hold a finished cache; the
// progress of an unfinished one is discarded.
func Create(dir string, s Settings, perShard int) (*Writer, error) {
	if perShard < 1 {
		return nil, fmt.Errorf("latentcache: %d samples per shard, want at least 1", perShard)
	}
	if _, err := os.Stat(filepath.Join(dir, manifestName)); err == nil {
		return nil, fmt.Errorf("latentcache: %s already holds a cache; remove it first", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("latentcache: %w", err)
	}
	if err := os.Remove(filepath.Join(dir, partialName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("latentcache: %w", err)
	}
	return &Writer{dir: dir, perShard: perShard, m: manifest{Settings: s}, seen: map[string]bool{}}, nil
}

// Resume continues the unfinished cache in dir (its partial.json) for settings s, returning the
// writer and the After of the last sample saved; a cache made with other settings is refused,
// naming each difference. Without partial.json it is Create, with a nil After.
func Resume(dir string, s Settings, perShard int) (*Writer, json.RawMessage, error) {
	js, err := os.ReadFile(filepath.Join(dir, partialName))
	if errors.Is(err, fs.ErrNotExist) {
		w, err := Create(dir, s, perShard)
		return w, nil, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("latentcache: %w", err)
	}
	if perShard < 1 {
		return nil, nil, fmt.Errorf("latentcache: %d samples per shard, want at least 1", perShard)
	}
	w := &Writer{dir: dir, perShard: perShard, seen: map[string]bool{}}
	if err := json.Unmarshal(js, &w.m); err != nil {
		return nil, nil, fmt.Errorf("latentcache: %s: %w", filepath.Join(dir, partialName), err)
	}
	if d := w.m.Settings.diff(s); len(d) > 0 {
		return nil, nil, fmt.Errorf("latentcache: the unfinished cache in %s was made with other settings; restart it or change the run:\n  %s", dir, strings.Join(d, "\n  "))
	}
	for _, sh := range w.m.Shards {
		for _, k := range sh.Keys {
			w.seen[k] = true
		}
	}
	for _, k := range w.m.Undecodable {
		w.seen[k] = true
	}
	return w, w.m.After, nil
}

// Len is the number of samples written or queued so far (not counting the
// empty prompt's entry or the undecodable samples).
func (w *Writer) Len() int { return len(w.seen) - len(w.m.Undecodable) - w.count(EmptyPromptKey) }

// Has reports whether key is written or queued.
func (w *Writer) Has(key string) bool { return w.seen[key] }

func (w *Writer) count(key string) int {
	if w.seen[key] {
		return 1
	}
	return 0
}

// AddUndecodable records a sample whose image did not decode (see manifest.Undecodable).
func (w *Writer) AddUndecodable(key string, after json.RawMessage) error {
	if key == "" || w.seen[key] {
		return fmt.Errorf("latentcache: sample key %q is empty or already in the cache", key)
	}
	w.seen[key] = true
	w.m.Undecodable = append(w.m.Undecodable, key)
	if len(w.pending) == 0 {
		w.m.After = after
	} else {
		w.pending[len(w.pending)-1].After = after
	}
	return nil
}

// Add queues one sample, writing a shard when perShard samples are queued.
func (w *Writer) Add(e Entry) error {
	if e.Key == "" || w.seen[e.Key] {
		return fmt.Errorf("latentcache: sample key %q is empty or already in the cache", e.Key)
	}
	for name, a := range e.Arrays {
		n := 1
		for _, d := range a.Shape {
			n *= d
		}
		if n != len(a.Data) {
			return fmt.Errorf("latentcache: %s/%s: shape %v holds %d values, data has %d", e.Key, name, a.Shape, n, len(a.Data))
		}
	}
	w.seen[e.Key] = true
	w.pending = append(w.pending, e)
	if len(w.pending) >= w.perShard {
		return w.flush()
	}
	return nil
}

// captionsMeta prefixes the shard metadata key holding sample i's captions as JSON: "captions/i".
const captionsMeta = "captions/"

// Flush writes the queued samples as a shard and records the progress in partial.json, so that a
// writer killed after Flush loses nothing written (Add flushes every perShard samples).
func (w *Writer) Flush() error {
	if len(w.pending) == 0 {
		return w.writeRecord(partialName)
	}
	sh := shard{File: fmt.Sprintf("shard-%05d.safetensors", len(w.m.Shards))}
	var ts []*safetensors.Tensor
	meta := map[string]string{}
	for i, e := range w.pending {
		sh.Keys = append(sh.Keys, e.Key)
		for name, a := range e.Arrays {
			ts = append(ts, safetensors.FromFloat32(fmt.Sprintf("%d/%s", i, name), a.Shape, a.Data))
		}
		if len(e.Captions) > 0 {
			js, err := json.Marshal(e.Captions)
			if err != nil {
				return fmt.Errorf("latentcache: %s: captions: %w", e.Key, err)
			}
			meta[fmt.Sprintf("%s%d", captionsMeta, i)] = string(js)
		}
	}
	if err := safetensors.WriteFile(filepath.Join(w.dir, sh.File), ts, meta); err != nil {
		return fmt.Errorf("latentcache: %w", err)
	}
	w.m.Shards = append(w.m.Shards, sh)
	w.m.After = w.pending[len(w.pending)-1].After
	w.pending = nil
	return w.writeRecord(partialName)
}

func (w *Writer) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	return w.Flush()
}

// writeRecord writes the manifest as name, atomically.
func (w *Writer) writeRecord(name string) error {
	js, err := json.MarshalIndent(w.m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(w.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, js, 0o644); err != nil {
		return fmt.Errorf("latentcache: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, name)); err != nil {
		return fmt.Errorf("latentcache: %w", err)
	}
	return nil
}

// Close writes the last shard and the manifest, which makes the cache usable, and removes the
// progress file and any shard a killed writer left beyond the last one it recorded.
func (w *Writer) Close() error {
	if err := w.flush(); err != nil {
		return err
	}
	w.m.After = nil
	if err := w.writeRecord(manifestName); err != nil {
		return err
	}
	listed := map[string]bool{}
	for _, sh := range w.m.Shards {
		listed[sh.File] = true
	}
	stray, _ := filepath.Glob(filepath.Join(w.dir, "shard-*.safetensors"))
	for _, p := range stray {
		if !listed[filepath.Base(p)] {
			os.Remove(p)
		}
	}
	if err := os.Remove(filepath.Join(w.dir, partialName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("latentcache: %w", err)
	}
	return nil
}

// Cache is an opened cache; Get reads one sample's arrays from its shard. It is meant for one
// goroutine.
type Cache struct {
	dir         string
	m           manifest
	where       map[string][2]int  // key → shard, index in shard
	heads       map[int]*shardHead // shard headers read so far
	undecodable map[string]bool
}

// shardHead is a shard's parsed header and where its data section starts.
type shardHead struct {
	h    *safetensors.Header
	data int64
}

// Finished reports whether dir holds a finished cache (its manifest).
func Finished(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, manifestName))
	return err == nil
}

// Open opens the cache in dir for a run with settings run: a cache made with other settings is
// refused, naming each difference.
func Open(dir string, run Settings) (*Cache, error) {
	js, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("latentcache: %s is not a finished cache (no %s; rerun `data cache`)", dir, manifestName)
	}
	if err != nil {
		return nil, fmt.Errorf("latentcache: %w", err)
	}
	c := &Cache{dir: dir, where: map[string][2]int{}, heads: map[int]*shardHead{}, undecodable: map[string]bool{}}
	if err := json.Unmarshal(js, &c.m); err != nil {
		return nil, fmt.Errorf("latentcache: %s: %w", filepath.Join(dir, manifestName), err)
	}
	if d := c.m.Settings.diff(run); len(d) > 0 {
		return nil, fmt.Errorf("latentcache: %s was made with other settings; rebuild it or change the run:\n  %s", dir, strings.Join(d, "\n  "))
	}
	for s, sh := range c.m.Shards {
		for i, k := range sh.Keys {
			c.where[k] = [2]int{s, i}
		}
	}
	for _, k := range c.m.Undecodable {
		c.undecodable[k] = true
	}
	return c, nil
}

// Dir is the cache's folder.
func (c *Cache) Dir() string { return c.dir }

// Len is the number of samples in the cache (not counting the empty
// prompt's entry).
func (c *Cache) Len() int {
	if _, ok := c.where[EmptyPromptKey]; ok {
		return len(c.where) - 1
	}
	return len(c.where)
}

// Keys lists the samples' keys in the order they were written.
func (c *Cache) Keys() []string {
	var keys []string
	for _, sh := range c.m.Shards {
		keys = append(keys, sh.Keys...)
	}
	return keys
}

// Undecodable reports whether the sample key's image did not decode when the cache was made.
func (c *Cache) Undecodable(key string) bool { return c.undecodable[key] }

// Get reads sample key's arrays, reading only their bytes from the shard file.
func (c *Cache) Get(key string) (Entry, error) {
	at, ok := c.where[key]
	if !ok {
		return Entry{}, fmt.Errorf("latentcache: sample %q is not in the cache %s", key, c.dir)
	}
	path := filepath.Join(c.dir, c.m.Shards[at[0]].File)
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, fmt.Errorf("latentcache: %w", err)
	}
	defer f.Close()
	sh := c.heads[at[0]]
	if sh == nil {
		h, err := safetensors.ReadHeader(path)
		if err != nil {
			return Entry{}, fmt.Errorf("latentcache: %w", err)
		}
		var n [8]byte
		if _, err := f.ReadAt(n[:], 0); err != nil {
			return Entry{}, fmt.Errorf("latentcache: %s: %w", path, err)
		}
		sh = &shardHead{h: h, data: 8 + int64(binary.LittleEndian.Uint64(n[:]))}
		c.heads[at[0]] = sh
	}
	prefix := fmt.Sprintf("%d/", at[1])
	e := Entry{Key: key, Arrays: map[string]Array{}}
	if js, ok := sh.h.Metadata[fmt.Sprintf("%s%d", captionsMeta, at[1])]; ok {
		if err := json.Unmarshal([]byte(js), &e.Captions); err != nil {
			return Entry{}, fmt.Errorf("latentcache: %s: captions of %s: %w", path, key, err)
		}
	}
	for _, he := range sh.h.Entries {
		name, ok := strings.CutPrefix(he.Name, prefix)
		if !ok {
			continue
		}
		buf := make([]byte, he.End-he.Begin)
		if _, err := f.ReadAt(buf, sh.data+he.Begin); err != nil {
			return Entry{}, fmt.Errorf("latentcache: %s: %s: %w", path, he.Name, err)
		}
		t := &safetensors.Tensor{Name: he.Name, DType: he.DType, Shape: slices.Clone(he.Shape), Data: buf}
		v, err := t.Float32()
		if err != nil {
			return Entry{}, fmt.Errorf("latentcache: %s: %w", path, err)
		}
		e.Arrays[name] = Array{Shape: t.Shape, Data: v}
	}
	return e, nil
}
