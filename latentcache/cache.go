// Package latentcache stores what the frozen encoders make of each training sample (the VAE's latent
// distribution, the prompt embeddings, SDXL's pooled embeddings and time ids) so that training can
// skip the encoders. A cache is a folder of safetensors shards and a manifest naming the settings
// that produced it; Open refuses a cache whose settings differ from the run's, naming each one.
//
// Each sample's arrays are stored by name (the Name* constants); the posterior is stored, not a
// drawn latent, so that a run from the cache still draws latent = mean + std·ε every step, as the
// training scripts' latent_dist.sample() does.
//
// No command uses it yet: the `data cache` command that fills a cache, and the training loader that
// reads one, are still to come; until then only its tests do.
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

// Settings are what produced a cache. Each field's json name is the experiment key (or the model part)
// it comes from, so that a refusal names what to change.
type Settings struct {
	VAE           string   `json:"vae"`           // hash of the VAE encoder's weights and config
	TextEncoders  []string `json:"text_encoders"` // hashes of the text encoders, in order
	Data          string   `json:"data"`          // the data setup's fingerprint (sources, format)
	Resolution    int      `json:"data.resolution"`
	Buckets       []string `json:"data.buckets"`
	CenterCrop    bool     `json:"data.center_crop"`
	RandomFlip    bool     `json:"data.random_flip"`
	Interpolation string   `json:"data.interpolation"`
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

// Entry is one sample: its key (unique in the cache) and its arrays by name.
type Entry struct {
	Key    string
	Arrays map[string]Array
}

// manifest is manifest.json: written last, so a folder without one is an unfinished cache.
type manifest struct {
	Settings Settings `json:"settings"`
	Shards   []shard  `json:"shards"`
}

type shard struct {
	File string   `json:"file"`
	Keys []string `json:"keys"` // in the shard's order
}

const manifestName = "manifest.json"

// Writer writes a cache, perShard samples per shard file.
type Writer struct {
	dir      string
	perShard int
	m        manifest
	seen     map[string]bool
	pending  []Entry
}

// Create starts a cache in dir (created if needed), which must not hold a finished cache.
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
	return &Writer{dir: dir, perShard: perShard, m: manifest{Settings: s}, seen: map[string]bool{}}, nil
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

func (w *Writer) flush() error {
	if len(w.pending) == 0 {
		return nil
	}
	sh := shard{File: fmt.Sprintf("shard-%05d.safetensors", len(w.m.Shards))}
	var ts []*safetensors.Tensor
	for i, e := range w.pending {
		sh.Keys = append(sh.Keys, e.Key)
		for name, a := range e.Arrays {
			ts = append(ts, safetensors.FromFloat32(fmt.Sprintf("%d/%s", i, name), a.Shape, a.Data))
		}
	}
	if err := safetensors.WriteFile(filepath.Join(w.dir, sh.File), ts, nil); err != nil {
		return fmt.Errorf("latentcache: %w", err)
	}
	w.m.Shards = append(w.m.Shards, sh)
	w.pending = nil
	return nil
}

// Close writes the last shard and the manifest, which makes the cache usable.
func (w *Writer) Close() error {
	if err := w.flush(); err != nil {
		return err
	}
	js, err := json.MarshalIndent(w.m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(w.dir, "."+manifestName+".tmp")
	if err := os.WriteFile(tmp, js, 0o644); err != nil {
		return fmt.Errorf("latentcache: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, manifestName)); err != nil {
		return fmt.Errorf("latentcache: %w", err)
	}
	return nil
}

// Cache is an opened cache; Get reads one sample's arrays from its shard. It is meant for one
// goroutine.
type Cache struct {
	dir   string
	m     manifest
	where map[string][2]int  // key → shard, index in shard
	heads map[int]*shardHead // shard headers read so far
}

// shardHead is a shard's parsed header and where its data section starts.
type shardHead struct {
	h    *safetensors.Header
	data int64
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
	c := &Cache{dir: dir, where: map[string][2]int{}, heads: map[int]*shardHead{}}
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
	return c, nil
}

// Len is the number of samples in the cache.
func (c *Cache) Len() int { return len(c.where) }

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
