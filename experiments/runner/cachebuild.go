package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/schollz/progressbar/v3"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/latentcache"
	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/vae"
)

// CacheOptions are how BuildCache writes.
type CacheOptions struct {
	// Options: Log and NoProgress as for Run; StopAfter ends the pass after
	// that many samples without saving the ones not yet in a shard, as a
	// killed process would (tests).
	Options
	// PerShard is the number of samples per shard file (0: 1000).
	PerShard int
	// Restart discards an unfinished cache's progress instead of resuming it.
	Restart bool
}

// CacheReport summarises BuildCache.
type CacheReport struct {
	Dir              string
	Samples, Encoded int // in the cache; encoded by this invocation
	Undecodable      int // samples whose image did not decode (recorded, so training drops them too)
	EncodedImages    int // images through the VAE: samples × 2 with random_flip
	EncodedCaptions  int // captions through the text encoders
	Stats            datasets.Stats
	AlreadyComplete  bool // the folder held a finished cache with these settings
	Resumed          bool
	SamplesPerSecond float64
}

// String is the report's summary line.
func (c *CacheReport) String() string {
	if c.AlreadyComplete {
		return fmt.Sprintf("%s: a finished cache of %d samples with these settings; nothing to do", c.Dir, c.Samples)
	}
	return fmt.Sprintf("%s: %d samples (%d encoded now: %d images, %d captions, %.3g samples/s; %d undecodable)\ndata: %s",
		c.Dir, c.Samples, c.Encoded, c.EncodedImages, c.EncodedCaptions, c.SamplesPerSecond, c.Undecodable, c.Stats.String())
}

// BuildCache runs the frozen VAE encoder and text encoder(s) of experiment
// s once over its data and writes the cache data.cache names (see package
// latentcache): per sample the posterior (of both flips with
// data.random_flip), the embeddings of every caption candidate and, for
// SDXL, the pooled embeddings and time ids; and the encoding of "". A killed
// BuildCache keeps every finished shard and continues after the last one
// when called again; ending ctx flushes what is encoded first.
func BuildCache(ctx context.Context, s spec.Spec, opts CacheOptions) (rep *CacheReport, err error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Data.Cache == "" {
		return nil, fmt.Errorf("data.cache is empty: name the folder to write (-set data.cache=DIR)")
	}
	if s.Task == "vae" {
		return nil, fmt.Errorf("task = \"vae\" trains the VAE's encoder: it cannot read a latent cache")
	}
	r := &run{spec: s, opts: opts.Options, log: opts.Log}
	if r.log == nil {
		r.log = os.Stderr
	}
	defer r.close()
	var runErr error
	if err := backend.Catch(func() { rep, runErr = r.buildCache(ctx, opts) }); err != nil {
		return rep, err
	}
	return rep, runErr
}

func (r *run) buildCache(ctx context.Context, opts CacheOptions) (*CacheReport, error) {
	s := r.spec
	dir := s.Data.Cache
	b, choice, err := backend.Default(s.Run.Backend)
	if err != nil {
		return nil, err
	}
	r.backend, r.nnOpts = b, nn.ForBackend(choice.Name())
	fmt.Fprintln(r.log, backend.Describe(b, choice))
	// The teacher as a run loads it (a tiny one made first with
	// model.init_tiny, sizes checked), then the encoders' weights.
	if err := r.loadTeacher(); err != nil {
		return nil, err
	}
	p := r.pipe
	if err := p.LoadEncoders(); err != nil {
		return nil, err
	}
	cfg, err := r.dataConfig()
	if err != nil {
		return nil, err
	}
	set, err := cacheSettings(p, cfg)
	if err != nil {
		return nil, err
	}
	rep := &CacheReport{Dir: dir}
	if latentcache.Finished(dir) {
		c, err := latentcache.Open(dir, set)
		if err != nil {
			return nil, fmt.Errorf("data.cache = %q holds a finished cache: %w\n(remove the folder to rebuild it)", dir, err)
		}
		rep.Samples, rep.AlreadyComplete = c.Len(), true
		return rep, nil
	}
	perShard := opts.PerShard
	if perShard == 0 {
		perShard = 1000
	}
	var w *latentcache.Writer
	var after json.RawMessage
	if opts.Restart {
		w, err = latentcache.Create(dir, set, perShard)
	} else {
		w, after, err = latentcache.Resume(dir, set, perShard)
	}
	if err != nil {
		return nil, fmt.Errorf("data.cache = %q: %w", dir, err)
	}
	var pos datasets.Position
	if after != nil {
		if err := json.Unmarshal(after, &pos); err != nil {
			return nil, fmt.Errorf("data.cache = %q: its progress: %w (restart it with -restart)", dir, err)
		}
		rep.Resumed = true
		fmt.Fprintf(r.log, "data cache: resuming %s after %d samples\n", dir, w.Len())
	}
	pass, err := datasets.NewCachePass(cfg, pos)
	if err != nil {
		return nil, err
	}
	defer pass.Close()
	if r.cond, err = clip.NewConditioner(r.backend, r.nnOpts, p.TextEncoders...); err != nil {
		return nil, err
	}
	r.vaeRunner = vae.NewRunner(r.backend, p.VAE, r.nnOpts)
	if !w.Has(latentcache.EmptyPromptKey) {
		text, err := r.textArrays([]string{""})
		if err != nil {
			return nil, err
		}
		empty := map[string]latentcache.Array{}
		for name, a := range text[0] {
			empty[latentcache.CaptionArray(name, 0)] = a
		}
		if err := w.Add(latentcache.Entry{Key: latentcache.EmptyPromptKey, Captions: []string{""}, Arrays: empty}); err != nil {
			return nil, err
		}
	}

	var bar *progressbar.ProgressBar
	if !r.opts.NoProgress {
		bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(r.log), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("sample"), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(20), progressbar.OptionSetDescription("data cache"))
	}
	start := time.Now()
	chunk := max(s.Data.VAEEncodeBatchSize, 1)
	var items []cacheItem
	flushItems := func() error {
		if err := r.encodeItems(items, w, rep); err != nil {
			return err
		}
		items = items[:0]
		if bar != nil {
			_ = bar.Set(rep.Encoded)
		}
		return nil
	}
	for {
		smp, err := pass.Next(ctx)
		for _, key := range pass.Undecodable() {
			items = append(items, cacheItem{undecodable: key})
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				if ferr := flushItems(); ferr != nil {
					return rep, ferr
				}
				if ferr := w.Flush(); ferr != nil {
					return rep, ferr
				}
				return rep, fmt.Errorf("%w: %d samples in %s; run `data cache` again to continue", ErrInterrupted, w.Len(), dir)
			}
			return rep, err
		}
		after, err := json.Marshal(pass.Position())
		if err != nil {
			return rep, err
		}
		for i := range items {
			if items[i].after == nil {
				items[i].after = after // an undecodable sample is behind the next usable one
			}
		}
		items = append(items, cacheItem{sample: smp, after: after})
		if len(items) >= chunk {
			if err := flushItems(); err != nil {
				return rep, err
			}
			if r.opts.StopAfter > 0 && rep.Encoded >= r.opts.StopAfter {
				// As a killed process: the samples queued for the next shard are lost.
				return rep, fmt.Errorf("%w: StopAfter=%d reached after %d samples (not flushed)", ErrInterrupted, r.opts.StopAfter, rep.Encoded)
			}
		}
	}
	if len(items) > 0 {
		end, _ := json.Marshal(pass.Position())
		for i := range items {
			if items[i].after == nil {
				items[i].after = end
			}
		}
		if err := flushItems(); err != nil {
			return rep, err
		}
	}
	if err := w.Close(); err != nil {
		return rep, err
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(r.log)
	}
	rep.Samples, rep.Stats = w.Len(), pass.Stats()
	if secs := time.Since(start).Seconds(); secs > 0 {
		rep.SamplesPerSecond = float64(rep.Encoded) / secs
	}
	return rep, nil
}

// cacheItem is one sample of the pass on its way into the cache, or the key
// of one that did not decode; after is the pass's Position behind it.
type cacheItem struct {
	sample      *datasets.CacheSample
	undecodable string
	after       json.RawMessage
}

// encodeItems encodes the samples among items (one VAE pass per output
// size, one text-encoder pass for all their captions) and adds them to w in
// the pass's order.
func (r *run) encodeItems(items []cacheItem, w *latentcache.Writer, rep *CacheReport) error {
	arrays := make([]map[string]latentcache.Array, len(items))
	// The posteriors, by output size (buckets).
	bySize := map[[2]int][]int{}
	var sizes [][2]int
	var captions []string
	for i, it := range items {
		if it.sample == nil {
			continue
		}
		arrays[i] = map[string]latentcache.Array{}
		k := [2]int{it.sample.Height, it.sample.Width}
		if _, ok := bySize[k]; !ok {
			sizes = append(sizes, k)
		}
		bySize[k] = append(bySize[k], i)
		captions = append(captions, it.sample.Captions...)
	}
	for _, k := range sizes {
		if err := r.encodePosteriors(items, bySize[k], k[0], k[1], arrays, rep); err != nil {
			return err
		}
	}
	if len(captions) > 0 {
		text, err := r.textArrays(captions)
		if err != nil {
			return err
		}
		rep.EncodedCaptions += len(captions)
		n := 0
		for i, it := range items {
			if it.sample == nil {
				continue
			}
			for c := range it.sample.Captions {
				for name, a := range text[n] {
					arrays[i][latentcache.CaptionArray(name, c)] = a
				}
				n++
			}
		}
	}
	for i, it := range items {
		if it.sample == nil {
			if err := w.AddUndecodable(it.undecodable, it.after); err != nil {
				return err
			}
			rep.Undecodable++
			continue
		}
		smp := it.sample
		if r.pipe.Kind() == pipeline.SDXL {
			ids := latentcache.Array{Shape: []int{6}, Data: clip.TimeIDs(smp.OriginalH, smp.OriginalW, smp.CropTop, smp.CropLeft, smp.Height, smp.Width)}
			arrays[i][latentcache.NameTimeIDs] = ids
			if smp.Flipped != nil {
				// The flipped crop's offsets in the mirrored image: the same
				// numbers, the crop being centred.
				arrays[i][latentcache.NameFlippedTimeIDs] = ids
			}
		}
		if err := w.Add(latentcache.Entry{Key: smp.Key, Captions: smp.Captions, Arrays: arrays[i], After: it.after}); err != nil {
			return err
		}
		rep.Encoded++
	}
	return nil
}

// encodePosteriors runs the VAE encoder on the samples idx of items (all of
// size h×w), both flips when the data flips, and stores each posterior.
func (r *run) encodePosteriors(items []cacheItem, idx []int, h, w int, arrays []map[string]latentcache.Array, rep *CacheReport) error {
	var pixels []float32
	flips := items[idx[0]].sample.Flipped != nil
	for _, i := range idx {
		pixels = append(pixels, items[i].sample.Pixels...)
	}
	if flips {
		for _, i := range idx {
			pixels = append(pixels, items[i].sample.Flipped...)
		}
	}
	n := len(pixels) / (3 * h * w)
	post, err := r.vaeRunner.Encode(tensors.FromFlatDataAndDimensions(pixels, n, 3, h, w), r.spec.Data.VAEEncodeBatchSize)
	if err != nil {
		return err
	}
	rep.EncodedImages += n
	mean, dims, err := nn.TensorFloat32(post.Mean)
	if err != nil {
		return err
	}
	logvar, _, err := nn.TensorFloat32(post.LogVar)
	if err != nil {
		return err
	}
	per := len(mean) / n
	at := func(x []float32, k int) latentcache.Array {
		return latentcache.Array{Shape: dims[1:], Data: x[k*per : (k+1)*per]}
	}
	for k, i := range idx {
		arrays[i][latentcache.NameMean], arrays[i][latentcache.NameLogVar] = at(mean, k), at(logvar, k)
		if flips {
			arrays[i][latentcache.NameFlippedMean], arrays[i][latentcache.NameFlippedLogVar] = at(mean, len(idx)+k), at(logvar, len(idx)+k)
		}
	}
	return nil
}

// textArrays encodes texts in one batch: per text its prompt embeddings
// [L, D] and, for SDXL, its pooled embeddings (named NamePromptEmbeds and
// NamePooled; the caller adds the caption index).
func (r *run) textArrays(texts []string) ([]map[string]latentcache.Array, error) {
	cond, err := r.tokenizeAndEncode(texts)
	if err != nil {
		return nil, err
	}
	ctx, dims, err := nn.TensorFloat32(cond.Context)
	if err != nil {
		return nil, err
	}
	var pooled []float32
	var pdims []int
	if cond.TextEmbeds != nil {
		if pooled, pdims, err = nn.TensorFloat32(cond.TextEmbeds); err != nil {
			return nil, err
		}
	}
	out := make([]map[string]latentcache.Array, len(texts))
	per := len(ctx) / len(texts)
	for i := range texts {
		out[i] = map[string]latentcache.Array{latentcache.NamePromptEmbeds: {Shape: dims[1:], Data: ctx[i*per : (i+1)*per]}}
		if pooled != nil {
			pp := pdims[1]
			out[i][latentcache.NamePooled] = latentcache.Array{Shape: pdims[1:], Data: pooled[i*pp : (i+1)*pp]}
		}
	}
	return out, nil
}
