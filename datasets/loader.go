package datasets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Sample is one decoded, transformed training example.
type Sample struct {
	Key     string
	Caption string
	Source  string    // the shard it came from
	Pixels  []float32 // 3×H×W, CHW, in [-1, 1]; a slice of Batch.Pixels
	// OriginalH and OriginalW are the decoded image's size before resizing, CropTop and CropLeft the
	// crop offset in the resized image (mirrored first when Flipped): SDXL's original_size and
	// crops_coords_top_left.
	OriginalH, OriginalW int
	CropTop, CropLeft    int
	Flipped              bool
	Kind                 string // image format: jpeg, png or webp

	raw    *rawSample // kept for ConvertToWebDataset only
	id     sampleID   // where it came from, for a Position's bucket queues
	bucket int        // index in the loader's buckets (0 without buckets)

	// A cache pass's extras (NewCachePass): every caption candidate, the mirrored crop.
	candidates []string
	flipped    []float32
}

// CacheKey names the sample in a latent cache: its shard, its offset there (unique even where a
// shard repeats a key) and its key.
func (s Sample) CacheKey() string { return fmt.Sprintf("%s#%d:%s", s.Source, s.id.offset, s.Key) }

// sampleID is a sample's identity in one epoch: what its randomness derives from.
type sampleID struct{ epoch, shard, offset int }

// Batch is BatchSize samples with their pixels stacked; with buckets, all from one bucket, whose size
// Height and Width are.
type Batch struct {
	Samples       []Sample
	Pixels        []float32 // B×3×Height×Width
	Captions      []string
	Height, Width int
}

// TimeIDs returns SDXL's add_time_ids for the batch, B×6: original (h, w), crop (top, left),
// target (h, w), in the order diffusers' compute_time_ids concatenates them.
func (b *Batch) TimeIDs() []float32 {
	ids := make([]float32, 0, 6*len(b.Samples))
	for _, s := range b.Samples {
		ids = append(ids, float32(s.OriginalH), float32(s.OriginalW), float32(s.CropTop), float32(s.CropLeft),
			float32(b.Height), float32(b.Width))
	}
	return ids
}

// item is one drawn sample on its way through the workers, or the end of the stream.
type item struct {
	raw    *rawSample
	snap   snapshot
	end    endKind
	done   chan struct{} // closed when a worker has filled sample or err
	sample Sample
	err    error
}

// Loader streams batches. Next, Position and Close are meant for one goroutine; Stats may be called
// from any.
type Loader struct {
	cfg         Config
	shards      []string
	format      string
	fingerprint string
	tf          transformSpec
	buckets     []Bucket // nil without multi-aspect training
	mode        loadMode
	// undecodable, for loadPlacement, names (by CacheKey) the samples a cache pass could not decode,
	// which are dropped as the pixel loader drops them.
	undecodable func(key string) bool
	// bothFlips, for loadCache, renders each sample's mirrored crop too; cacheDrops are the keys
	// of the undecodable samples taken since the pass last asked.
	bothFlips  bool
	cacheDrops []string

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pending chan *item // drawn samples in draw order, for the batcher
	jobs    chan *item // the same items, for the workers
	pixels  sync.Pool

	foldersMu sync.Mutex
	folders   map[int][]folderEntry

	msgMu      sync.Mutex
	lastErrors map[string]string

	// The batcher's state, as of the last item it took.
	mu        sync.Mutex
	head      *item
	queues    [][]Sample // per bucket (one without buckets), in draw order: the batch being filled
	reader    counts     // the reader's counters in the last item's snapshot
	batcher   counts     // drops counted after the shuffle buffer
	delivered int64
	batches   int64
	kinds     map[string]int64
	epoch     int
	badInARow int
	pos       Position
	err       error
	last      snapshot

	// emptyCaptions counts delivered samples with an empty caption.
	emptyCaptions int64
}

// loadMode is what a loader does with each image.
type loadMode int

const (
	loadPixels    loadMode = iota // decode, resize, crop, flip: training batches
	loadVerify                    // decode to check the image, skip the transform (ConvertToWebDataset)
	loadPlacement                 // read the size from the header and place the crop, no pixels (NewPlacementsAt)
	loadCache                     // decode, crop, and keep every caption and the mirrored crop (NewCachePass)
)

// New opens the sources and starts reading from the beginning.
func New(cfg Config) (*Loader, error) { return open(cfg, nil, loadPixels) }

// NewAt opens the sources and resumes right after the last sample of the batch whose Position was
// saved: the batches that follow are exactly those an uninterrupted run would have produced. The zero
// Position (no checkpoint yet) starts from the beginning, as New does.
func NewAt(cfg Config, pos Position) (*Loader, error) {
	return openAt(cfg, pos, loadPixels)
}

// NewPlacementsAt is NewAt without pixels: each sample's bucket, crop, flip and caption are those
// NewAt's loader gives it, the size read from the image header, no image decoded (Batch.Pixels and
// Sample.Pixels are nil): the stream along which outputs cached per sample (latentcache) are read.
// undecodable (nil: none) names by Sample.CacheKey the images that have a readable header but do
// not decode, which NewAt's loader drops; with it, the batches, Positions and counts are NewAt's.
func NewPlacementsAt(cfg Config, pos Position, undecodable func(key string) bool) (*Loader, error) {
	l, err := openAt(cfg, pos, loadPlacement, func(l *Loader) { l.undecodable = undecodable })
	return l, err
}

func openAt(cfg Config, pos Position, mode loadMode, setup ...func(*Loader)) (*Loader, error) {
	if pos.Fingerprint == "" {
		return open(cfg, nil, mode, setup...)
	}
	return open(cfg, &pos, mode, setup...)
}

// open starts a loader; setup runs on it before its goroutines start (restored bucket queues are
// processed after it).
func open(cfg Config, pos *Position, mode loadMode, setup ...func(*Loader)) (*Loader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	shards, format, err := expandSources(cfg.Sources, cfg.Format)
	if err != nil {
		return nil, err
	}
	if format == FormatParquet {
		if cfg.filtersOn() {
			return nil, fmt.Errorf("datasets: size and watermark filters read WebDataset or image-folder JSON metadata; parquet sources have none")
		}
		for _, s := range shards {
			if isPipe(s) || isURL(s) {
				return nil, fmt.Errorf("datasets: parquet source %q: parquet needs a local file (random access)", s)
			}
		}
	}
	filter, _ := filterNamed(cfg.Interpolation)
	buckets, _ := cfg.bucketSizes() // checked by withDefaults
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loader{
		cfg: cfg, shards: shards, format: format, fingerprint: fingerprint(cfg, shards, format, buckets),
		tf:      transformSpec{res: cfg.Resolution, buckets: buckets, filter: filter, center: cfg.CenterCrop, flip: cfg.RandomFlip},
		buckets: buckets, queues: make([][]Sample, max(len(buckets), 1)),
		mode: mode, ctx: ctx, cancel: cancel,
		pending: make(chan *item, 2*cfg.Workers+2), jobs: make(chan *item, cfg.Workers),
		folders: map[int][]folderEntry{}, lastErrors: map[string]string{}, kinds: map[string]int64{},
	}
	for _, f := range setup {
		f(l)
	}
	st := &readerState{}
	if pos != nil {
		if pos.Fingerprint != l.fingerprint {
			cancel()
			return nil, fmt.Errorf("datasets: position belongs to another data setup (fingerprint %q, this one %q): sources, format, seed and shuffle buffer must match", pos.Fingerprint, l.fingerprint)
		}
		st.epoch, st.k, st.offset, st.draws = pos.Epoch, pos.Shard, pos.Offset, pos.Draws
		st.counts, l.batcher = pos.Stats.split()
		l.delivered, l.batches, l.epoch = pos.Stats.Delivered, pos.Stats.Batches, pos.Epoch
		for k, v := range pos.Stats.Kinds {
			l.kinds[k] = v
		}
		l.emptyCaptions = pos.Stats.EmptyCaptions
		refs := make([]ref, len(pos.Buffer))
		for i, b := range pos.Buffer {
			refs[i] = ref{b[0], b[1]}
		}
		l.restoreBuffer(st, refs)
		if err := l.restoreQueues(pos.Queues); err != nil {
			cancel()
			return nil, err
		}
	}
	l.reader = st.counts
	l.last = st.snapshot()
	l.pos = l.positionAt(l.last)
	l.wg.Add(1 + cfg.Workers)
	go l.read(st)
	for i := 0; i < cfg.Workers; i++ {
		go l.work()
	}
	return l, nil
}

// Close stops the reader and the workers (killing pipe: commands, dropping connections) and waits for
// them.
func (l *Loader) Close() error {
	l.cancel()
	l.wg.Wait()
	return nil
}

// Position is where a resumed run must start to continue right after the last batch Next returned.
func (l *Loader) Position() Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pos
}

// Stats returns the counters as of the last sample Next took.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	s := statsOf(l.epoch, l.reader, l.batcher, l.delivered, l.batches, l.kinds, l.emptyCaptions)
	l.mu.Unlock()
	l.msgMu.Lock()
	s.LastErrors = make(map[string]string, len(l.lastErrors))
	for k, v := range l.lastErrors {
		s.LastErrors[k] = v
	}
	l.msgMu.Unlock()
	return s
}

// errClosed is returned by Next after Close.
var errClosed = errors.New("datasets: loader closed")

// Next returns the next batch of BatchSize samples. It returns io.EOF after Config.Epochs passes (a
// last incomplete batch is counted as partial_batch), and an error showing the counts when the data
// yields nothing usable. A Next interrupted by ctx loses nothing: the next call continues the batch.
func (l *Loader) Next(ctx context.Context) (*Batch, error) {
	if l.err != nil {
		return nil, l.err
	}
	for {
		if q := l.fullQueue(); q >= 0 {
			return l.assemble(q), nil
		}
		if l.head == nil {
			select {
			case it, ok := <-l.pending:
				if !ok {
					l.err = errClosed
					return nil, l.err
				}
				l.head = it
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		select {
		case <-l.head.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.ctx.Done():
			l.err = errClosed
			return nil, l.err
		}
		it := l.head
		l.head = nil
		if err := l.take(it); err != nil {
			l.err = err
			return nil, err
		}
	}
}

// fullQueue is the index of a bucket queue holding a batch, or -1. Only the queue that took the last
// sample can be full, except right after a resume with a smaller batch size.
func (l *Loader) fullQueue() int {
	for i, q := range l.queues {
		if len(q) >= l.cfg.BatchSize {
			return i
		}
	}
	return -1
}

// take accounts for one item in draw order.
func (l *Loader) take(it *item) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reader, l.epoch, l.last = it.snap.counts, it.snap.epoch, it.snap
	stats := func() string {
		s := statsOf(l.epoch, l.reader, l.batcher, l.delivered, l.batches, l.kinds, l.emptyCaptions)
		return s.String() + l.lastErrorsLine()
	}
	switch it.end {
	case endEOF:
		for i, q := range l.queues {
			l.batcher.drops[dropPartialBatch] += int64(len(q))
			for _, s := range q {
				l.putPixels(s.Pixels)
			}
			l.queues[i] = nil
		}
		return io.EOF
	case endEpochEmpty:
		return fmt.Errorf("datasets: epoch %d gave no usable sample from %d shards: %s", it.snap.epoch, len(l.shards), stats())
	case endDrops:
		return fmt.Errorf("datasets: %d samples in a row were dropped: %s", l.cfg.MaxConsecutiveDrops, stats())
	}
	if it.err != nil {
		if l.mode == loadCache {
			l.cacheDrops = append(l.cacheDrops, it.sample.CacheKey())
		}
		l.batcher.drops[dropUndecodable]++
		l.msgMu.Lock()
		l.lastErrors[dropUndecodable.String()] = it.err.Error()
		l.msgMu.Unlock()
		if l.badInARow++; l.badInARow >= l.cfg.MaxConsecutiveDrops {
			return fmt.Errorf("datasets: %d images in a row did not decode: %s", l.badInARow, stats())
		}
		return nil
	}
	l.badInARow = 0
	l.delivered++
	l.kinds[it.sample.Kind]++
	if strings.TrimSpace(it.sample.Caption) == "" {
		l.emptyCaptions++
	}
	l.queues[it.sample.bucket] = append(l.queues[it.sample.bucket], it.sample)
	return nil
}

// lastErrorsLine lists the latest message of each drop reason, for an error that stops the run.
func (l *Loader) lastErrorsLine() string {
	l.msgMu.Lock()
	defer l.msgMu.Unlock()
	var b strings.Builder
	for _, name := range reasonNames {
		if msg, ok := l.lastErrors[name]; ok {
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			fmt.Fprintf(&b, "; last %s: %s", name, msg)
		}
	}
	return b.String()
}

// assemble stacks the first BatchSize samples of bucket queue q into a batch and moves the Position
// to the last sample taken (the other queues' samples are saved in it).
func (l *Loader) assemble(q int) *Batch {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := Bucket{l.cfg.Resolution, l.cfg.Resolution}
	if l.buckets != nil {
		size = l.buckets[q]
	}
	n := 3 * size.W * size.H
	k := l.cfg.BatchSize
	b := &Batch{Samples: l.queues[q][:k:k], Height: size.H, Width: size.W}
	l.queues[q] = append([]Sample(nil), l.queues[q][k:]...)
	withPixels := l.mode == loadPixels || l.mode == loadCache
	if withPixels {
		b.Pixels = make([]float32, n*len(b.Samples))
	}
	for i := range b.Samples {
		s := &b.Samples[i]
		if withPixels {
			dst := b.Pixels[i*n : (i+1)*n]
			copy(dst, s.Pixels)
			l.putPixels(s.Pixels)
			s.Pixels = dst
		}
		b.Captions = append(b.Captions, s.Caption)
	}
	l.batches++
	l.pos = l.positionAt(l.last)
	return b
}

// work is one decoding goroutine.
func (l *Loader) work() {
	defer l.wg.Done()
	for it := range l.jobs {
		l.process(it)
		it.raw = nil
		close(it.done)
	}
}

// process decodes and transforms one sample. All its randomness comes from the sample's identity,
// so the worker that runs it does not matter.
func (l *Loader) process(it *item) {
	defer func() {
		if p := recover(); p != nil {
			it.err = fmt.Errorf("%s: panic: %v", it.raw.key, p)
		}
	}()
	r := it.raw
	rnd := newSampleRand(l.cfg.Seed, it.snap.epoch, r.shard, r.offset)
	caption := chooseCaption(r.captions, rnd)
	s := Sample{Key: r.key, Caption: caption, Source: l.shards[r.shard], id: sampleID{it.snap.epoch, r.shard, r.offset}}
	it.sample = s // an undecodable sample keeps its identity (a cache pass records it)
	var img rgbImage
	format := sniffFormat(r.image)
	var w, h int
	ok := false
	if l.mode == loadPlacement {
		w, h, ok = imageDims(r.image)
		if ok && l.undecodable != nil && l.undecodable(s.CacheKey()) {
			it.err = fmt.Errorf("%s in %s: did not decode when the cache was made", r.key, l.shards[r.shard])
			return
		}
	}
	if !ok {
		var err error
		if img, format, err = decodeRGB(r.image); err != nil {
			it.err = fmt.Errorf("%s in %s: %w", r.key, l.shards[r.shard], err)
			return
		}
		w, h = img.w, img.h
	}
	s.OriginalH, s.OriginalW, s.Kind = h, w, format
	var p placement
	switch l.mode {
	case loadVerify:
		s.raw = r
		it.sample = s
		return
	case loadPlacement:
		p = l.tf.place(w, h, rnd)
	case loadCache:
		s.Pixels, p = l.tf.apply(img, rnd, l.getPixels())
		s.candidates = slices.Clone(r.captions)
		if l.bothFlips {
			mirrored := p
			mirrored.flipped = true
			s.flipped = l.tf.render(img, mirrored, nil)
		}
	default:
		s.Pixels, p = l.tf.apply(img, rnd, l.getPixels())
	}
	s.CropTop, s.CropLeft, s.Flipped = p.top, p.left, p.flipped
	if l.buckets != nil {
		s.bucket = slices.Index(l.buckets, p.bucket)
	}
	it.sample = s
}

// getPixels returns a pooled pixel buffer (apply grows one too small for its bucket).
func (l *Loader) getPixels() []float32 {
	if p, ok := l.pixels.Get().(*[]float32); ok {
		return *p
	}
	return nil
}

func (l *Loader) putPixels(p []float32) {
	if p != nil {
		l.pixels.Put(&p)
	}
}
