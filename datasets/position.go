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
	// Stats are the counters at this position, so that a resumed run's counts continue.
	Stats Stats `json:"stats"`
}

// String is a short form for logs: "epoch 2 shard 17 offset 345 draws 12000 buffer 1000".
func (p Position) String() string {
	return fmt.Sprintf("epoch %d shard %d offset %d draws %d buffer %d", p.Epoch, p.Shard, p.Offset, p.Draws, len(p.Buffer))
}

// fingerprint hashes what the sample order depends on.
func fingerprint(cfg Config, shards []string, format string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d\n%d\n%s", format, cfg.Seed, max(cfg.ShuffleBuffer, 1), strings.Join(shards, "\n"))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// positionAt is the Position of a reader snapshot with the batcher's current counters.
func (l *Loader) positionAt(s snapshot) Position {
	buf := make([][2]int, len(s.buffer))
	for i, r := range s.buffer {
		buf[i] = [2]int{r.shard, r.offset}
	}
	return Position{Fingerprint: l.fingerprint, Epoch: s.epoch, Shard: s.k, Offset: s.offset, Draws: s.draws,
		Buffer: buf, Stats: statsOf(s.epoch, s.counts, l.batcher, l.delivered, l.batches, l.kinds, l.emptyCaptions)}
}
