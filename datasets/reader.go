package datasets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
)

// The reader goroutine walks the epochs: each epoch reads every shard once, in an order drawn from the
// seed and the epoch number, and passes every usable sample through the shuffle buffer. A sample
// leaves the buffer by a draw: draw d of epoch e takes position hash(seed, e, d) mod len(buffer) and
// moves the last sample into its place (WebDataset's swap-and-pop). Nothing else is random, so the
// whole stream is a function of the seed and the data.
//
// Resuming exactly: every drawn sample carries a snapshot of the reader's state just after its draw:
// the epoch, the cursor (index in the epoch's shard order, next sample offset in that shard), the
// number of draws, and the shuffle buffer as (shard, offset) references in buffer order. A Position is
// the snapshot of the last sample of the last batch. Restoring re-reads, from their shards, only the
// samples the buffer held (buffers span few shards), then continues reading at the cursor, so the next
// draw sees the same buffer, in the same order, with the same draw number as the uninterrupted run.
// Copying the buffer references per draw costs 16 bytes per buffered sample, far below decoding.

// ref names a sample: its shard's index in the source list and its offset in that shard.
type ref struct{ shard, offset int }

// snapshot is the reader's state just after a draw.
type snapshot struct {
	epoch, k, offset, draws int
	buffer                  []ref
	counts                  counts
}

// readerState is the reader goroutine's state.
type readerState struct {
	epoch, k, offset, draws int
	buf                     []*rawSample
	counts                  counts
}

func (st *readerState) snapshot() snapshot {
	refs := make([]ref, len(st.buf))
	for i, r := range st.buf {
		refs[i] = ref{r.shard, r.offset}
	}
	return snapshot{epoch: st.epoch, k: st.k, offset: st.offset, draws: st.draws, buffer: refs, counts: st.counts}
}

// endKind marks the items that end the stream.
type endKind int

const (
	endNone       endKind = iota
	endEOF                // Config.Epochs passes are done
	endEpochEmpty         // a whole epoch gave no usable sample
	endDrops              // MaxConsecutiveDrops samples in a row were dropped
)

// shardOrder is the order in which epoch reads the shards: a Fisher-Yates shuffle from the seed and
// the epoch when shuffling is on, the source order otherwise.
func (l *Loader) shardOrder(epoch int) []int {
	order := make([]int, len(l.shards))
	for i := range order {
		order[i] = i
	}
	if l.cfg.ShuffleBuffer > 1 {
		rnd := &sampleRand{state: mix(uint64(l.cfg.Seed), 0x7368617264, uint64(epoch))}
		for i := len(order) - 1; i > 0; i-- {
			j := rnd.intN(i + 1)
			order[i], order[j] = order[j], order[i]
		}
	}
	return order
}

// stream reads shard idx from offset from on with the reader of the loader's format.
func (l *Loader) stream(ctx context.Context, idx, from int, emit func(*rawSample) bool) (int, error) {
	name := l.shards[idx]
	switch l.format {
	case FormatWebDataset:
		return streamTar(ctx, name, idx, from, &l.cfg, emit)
	case FormatParquet:
		return streamParquet(ctx, name, idx, from, &l.cfg, emit)
	}
	entries, err := l.folderEntries(idx)
	if err != nil {
		return 0, err
	}
	return streamFolder(ctx, name, entries, idx, from, emit)
}

// folderEntries lists image folder shard idx once per loader.
func (l *Loader) folderEntries(idx int) ([]folderEntry, error) {
	l.foldersMu.Lock()
	defer l.foldersMu.Unlock()
	if e, ok := l.folders[idx]; ok {
		return e, nil
	}
	name := l.shards[idx]
	if _, err := os.Stat(name); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, shardErr(dropMissingFile, "%s", err)
		}
		return nil, shardErr(dropReadError, "%s", err)
	}
	e, err := listImageFolder(name, l.cfg.CaptionColumn)
	if err != nil {
		return nil, shardErr(dropReadError, "image folder %s: %v", name, err)
	}
	l.folders[idx] = e
	return e, nil
}

// count records one drop in c and remembers its message for Stats.LastErrors.
func (l *Loader) count(c *counts, r reason, msg string) {
	c.drops[r]++
	l.msgMu.Lock()
	l.lastErrors[r.String()] = msg
	l.msgMu.Unlock()
}

// read is the reader goroutine: it runs until the configured epochs are done, the stream fails, or
// the loader is closed.
func (l *Loader) read(st *readerState) {
	defer l.wg.Done()
	defer close(l.jobs)
	defer close(l.pending)
	ctx := l.ctx
	bufSize := max(l.cfg.ShuffleBuffer, 1)
	sinceUsable := 0
	for l.cfg.Epochs == 0 || st.epoch < l.cfg.Epochs {
		order := l.shardOrder(st.epoch)
		for ; st.k < len(order); st.k, st.offset = st.k+1, 0 {
			idx := order[st.k]
			tooMany, stopped := false, false
			n, err := l.stream(ctx, idx, st.offset, func(r *rawSample) bool {
				st.offset = r.offset + 1
				st.counts.read++
				if why, msg, ok := l.cfg.check(r); !ok {
					l.count(&st.counts, why, l.shards[idx]+": "+msg)
					sinceUsable++
					tooMany = sinceUsable >= l.cfg.MaxConsecutiveDrops
					return !tooMany
				}
				sinceUsable = 0
				st.buf = append(st.buf, r)
				for len(st.buf) >= bufSize {
					if !l.draw(st) {
						stopped = true
						return false
					}
				}
				return true
			})
			if stopped || ctx.Err() != nil {
				return
			}
			if tooMany {
				l.end(st, endDrops)
				return
			}
			st.counts.shards++
			var se *shardError
			switch {
			case errors.As(err, &se):
				l.count(&st.counts, se.reason, se.msg)
			case err != nil:
				l.count(&st.counts, dropReadError, fmt.Sprintf("%s: %v", l.shards[idx], err))
			case n == 0:
				l.count(&st.counts, dropEmptyShard, l.shards[idx])
			}
		}
		for len(st.buf) > 0 {
			if !l.draw(st) {
				return
			}
		}
		if st.draws == 0 {
			l.end(st, endEpochEmpty)
			return
		}
		st.epoch++
		st.k, st.offset, st.draws = 0, 0, 0
	}
	l.end(st, endEOF)
}

// draw takes one sample out of the shuffle buffer and queues it for decoding; false when closed.
func (l *Loader) draw(st *readerState) bool {
	i := 0
	if n := len(st.buf); n > 1 {
		h := mix(uint64(l.cfg.Seed), 0x64726177, uint64(st.epoch), uint64(st.draws))
		i = int((h >> 32) * uint64(n) >> 32)
	}
	last := len(st.buf) - 1
	r := st.buf[i]
	st.buf[i] = st.buf[last]
	st.buf[last] = nil
	st.buf = st.buf[:last]
	st.draws++
	it := &item{raw: r, snap: st.snapshot(), done: make(chan struct{})}
	select {
	case l.pending <- it:
	case <-l.ctx.Done():
		return false
	}
	select {
	case l.jobs <- it:
	case <-l.ctx.Done():
		return false
	}
	return true
}

// end queues the item that ends the stream.
func (l *Loader) end(st *readerState, kind endKind) {
	it := &item{end: kind, snap: st.snapshot(), done: make(chan struct{})}
	close(it.done)
	select {
	case l.pending <- it:
	case <-l.ctx.Done():
	}
}

// restoreBuffer re-reads the samples a Position's shuffle buffer held, in buffer order. A sample that
// cannot be found again (the data changed) is counted as resume_lost.
func (l *Loader) restoreBuffer(st *readerState, refs []ref) {
	for i, r := range l.reread(refs) {
		if r == nil {
			l.count(&st.counts, dropResumeLost, fmt.Sprintf("%s offset %d", l.shards[refs[i].shard], refs[i].offset))
			continue
		}
		st.buf = append(st.buf, r)
	}
}

// reread reads the samples refs name from their shards, in refs order, nil for one not found or no
// longer usable. Each passes the sample checks again, which also apply drop_empty_captions' removal
// of blank candidates, as the first read did.
func (l *Loader) reread(refs []ref) []*rawSample {
	where := map[int]map[int][]int{} // shard → offset → indices in refs
	for i, r := range refs {
		if where[r.shard] == nil {
			where[r.shard] = map[int][]int{}
		}
		where[r.shard][r.offset] = append(where[r.shard][r.offset], i)
	}
	shards := make([]int, 0, len(where))
	for s := range where {
		shards = append(shards, s)
	}
	sort.Ints(shards)
	found := make([]*rawSample, len(refs))
	for _, s := range shards {
		want := where[s]
		from := -1
		for off := range want {
			if from < 0 || off < from {
				from = off
			}
		}
		left := len(want)
		l.stream(l.ctx, s, from, func(r *rawSample) bool {
			if is, ok := want[r.offset]; ok {
				if _, _, usable := l.cfg.check(r); usable {
					for _, i := range is {
						found[i] = r
					}
				}
				left--
			}
			return left > 0
		})
	}
	return found
}
