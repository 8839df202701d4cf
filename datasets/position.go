package datasets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Position is everything a resumed run needs to continue the sample stream exactly: it is saved in a
// checkpoint as JSON and handed to NewAt. See reader.go for why these fields are enough.
type Position struct {
	// Fingerprint identifies the data setup (expanded shard list, format, seed, shuffle buffer size);
	// NewAt refuses a Position from another setup.
	Fingerprint string `json:"fingerprint"`
	Epoch       int    `json:"epoch"`
	// Shard is the index, in the epoch's shard order, of the shard being read; Offset the next sample
	// offset in it (samples counted from the shard's start, usable or not).
	Shard  int `json:"shard"`
	Offset int `json:"offset"`
	// Draws is how many samples this epoch has taken out of the shuffle buffer.
	Draws int `json:"draws"`
	// Buffer is the shuffle buffer, in order, as (shard index in the source list, sample offset).
	Buffer [][2]int `json:"buffer"`
	// Queues are, with buckets, the samples waiting in each bucket's queue for its batch to fill, in
	// draw order, as (epoch, shard index, sample offset): a resumed run decodes them again (their crop
	// and flip derive from that identity) and continues filling the same batches.
	Queues [][][3]int `json:"queues,omitempty"`
	// Stats are the counters at this position, so that a resumed run's counts continue.
	Stats Stats `json:"stats"`
}

// String is a short form for logs: "epoch 2 shard 17 offset 345 draws 12000 buffer 1000".
func (p Position) String() string {
	return fmt.Sprintf("epoch %d shard %d offset %d draws %d buffer %d", p.Epoch, p.Shard, p.Offset, p.Draws, len(p.Buffer))
}

// fingerprint hashes what the sample order depends on, and the buckets (a Position's queues index
// them); without buckets it is what it was before buckets existed, so older Positions still resume.
func fingerprint(cfg Config, shards []string, format string, buckets []Bucket) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d\n%d\n%s", format, cfg.Seed, max(cfg.ShuffleBuffer, 1), strings.Join(shards, "\n"))
	if buckets != nil {
		fmt.Fprintf(h, "\nbuckets %v", buckets)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// positionAt is the Position of a reader snapshot with the batcher's current counters.
func (l *Loader) positionAt(s snapshot) Position {
	buf := make([][2]int, len(s.buffer))
	for i, r := range s.buffer {
		buf[i] = [2]int{r.shard, r.offset}
	}
	p := Position{Fingerprint: l.fingerprint, Epoch: s.epoch, Shard: s.k, Offset: s.offset, Draws: s.draws,
		Buffer: buf, Stats: statsOf(s.epoch, s.counts, l.batcher, l.delivered, l.batches, l.kinds, l.emptyCaptions)}
	if l.buckets != nil {
		p.Queues = make([][][3]int, len(l.queues))
		for i, q := range l.queues {
			p.Queues[i] = make([][3]int, len(q))
			for j, smp := range q {
				p.Queues[i][j] = [3]int{smp.id.epoch, smp.id.shard, smp.id.offset}
			}
		}
	}
	return p
}

// restoreQueues reads, decodes and transforms again the samples a Position's bucket queues held. They
// were counted when first taken; one that cannot be found or decoded again (the data changed) is
// counted as resume_lost.
func (l *Loader) restoreQueues(queues [][][3]int) error {
	if len(queues) == 0 {
		return nil
	}
	if len(queues) != len(l.queues) {
		return fmt.Errorf("datasets: position holds %d bucket queues, this setup has %d buckets", len(queues), len(l.queues))
	}
	var refs []ref
	for _, q := range queues {
		for _, id := range q {
			refs = append(refs, ref{id[1], id[2]})
		}
	}
	raws := l.reread(refs)
	k := 0
	for qi, q := range queues {
		for _, id := range q {
			r := raws[k]
			k++
			lost := func(msg string) {
				l.count(&l.batcher, dropResumeLost, fmt.Sprintf("%s offset %d: %s", l.shards[id[1]], id[2], msg))
			}
			if r == nil {
				lost("not found")
				continue
			}
			it := &item{raw: r, snap: snapshot{epoch: id[0]}}
			l.process(it)
			if it.err != nil {
				lost(it.err.Error())
				continue
			}
			if it.sample.bucket != qi {
				return fmt.Errorf("datasets: position's bucket queue %d holds %s, which goes to bucket %d", qi, r.key, it.sample.bucket)
			}
			l.queues[qi] = append(l.queues[qi], it.sample)
		}
	}
	return nil
}
