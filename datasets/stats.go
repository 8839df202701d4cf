package datasets

import (
	"fmt"
	"sort"
	"strings"
)

// reason is why a sample or a shard was skipped. Sample reasons count samples; shard reasons count
// shards (the samples a shard did deliver before failing are kept).
type reason int

const (
	// Sample reasons.
	dropUndecodable       reason = iota // the image bytes do not decode as JPEG, PNG or WebP
	dropMissingImage                    // no jpg/png/jpeg/webp member, null image, or the folder's file is missing
	dropMissingCaption                  // no txt/text/caption member, null or empty caption list
	dropMissingMetadata                 // a filter is on and the sample has no JSON metadata
	dropBadMetadata                     // the JSON metadata does not parse
	dropFilteredSize                    // smaller than MinWidth / MinHeight
	dropFilteredWatermark               // watermark probability above MaxWatermark
	dropTruncatedSample                 // the sample being read when its tar ended early
	dropTooLarge                        // a member or image beyond the size limits
	dropPartialBatch                    // left over after the last full batch of the last epoch
	dropResumeLost                      // a shuffle-buffer sample that could not be read again on resume
	dropEmptyCaption                    // every caption is empty or blank, and Config.DropEmptyCaptions is set
	// Shard reasons.
	dropMissingFile // the shard does not exist (or http 404)
	dropEmptyShard  // the shard holds no sample
	dropTruncatedTar
	dropPipeFailed // a pipe: command failed to start, exited non-zero, or went silent
	dropReadError  // any other read failure: http status, network, unreadable parquet
	numReasons
)

var reasonNames = [numReasons]string{
	"undecodable_image", "missing_image", "missing_caption", "missing_metadata", "bad_metadata",
	"filtered_size", "filtered_watermark", "truncated_sample", "too_large", "partial_batch", "resume_lost",
	"empty_caption",
	"missing_file", "empty_shard", "truncated_tar", "pipe_failed", "read_error",
}

func (r reason) String() string { return reasonNames[r] }

// shardLevel reports whether r counts shards rather than samples.
func (r reason) shardLevel() bool { return r >= dropMissingFile }

// decodeStage reports whether r is counted after the shuffle buffer, by the batcher, rather than by
// the reader; the two sets of counters are kept apart so that a Position can hold both exactly.
func (r reason) decodeStage() bool { return r == dropUndecodable || r == dropPartialBatch }

// ShardReasons and SampleReasons name every drop reason Stats counts, in a fixed order.
var (
	SampleReasons = append([]string(nil), reasonNames[:dropMissingFile]...)
	ShardReasons  = append([]string(nil), reasonNames[dropMissingFile:]...)
)

// counts are the reader's or the batcher's counters; a fixed-size value so that a snapshot is a copy.
type counts struct {
	shards int64 // shards read to their end (or failure)
	read   int64 // samples read from the sources, usable or not
	drops  [numReasons]int64
}

func (c *counts) add(o counts) {
	c.shards += o.shards
	c.read += o.read
	for i := range c.drops {
		c.drops[i] += o.drops[i]
	}
}

// sampleDrops is the number of samples dropped for any sample reason.
func (c *counts) sampleDrops() int64 {
	var n int64
	for r := reason(0); r < dropMissingFile; r++ {
		n += c.drops[r]
	}
	return n
}

// Stats are the loader's counters as of the last sample handed out (so they agree with Position).
type Stats struct {
	Epoch     int              `json:"epoch"`
	Shards    int64            `json:"shards"`    // shards read to their end or failure
	Read      int64            `json:"read"`      // samples read from the sources, usable or not
	Delivered int64            `json:"delivered"` // samples decoded into a batch (with buckets, also those still queued)
	Batches   int64            `json:"batches"`
	Kinds     map[string]int64 `json:"kinds"` // delivered samples by image format: jpeg, png, webp
	Drops     map[string]int64 `json:"drops"` // skipped samples or shards by reason (nonzero only)
	// LastErrors holds, per reason, the message of the most recent drop; it is not saved in Positions.
	LastErrors map[string]string `json:"-"`

	// EmptyCaptions counts delivered samples whose caption is empty or blank (they train the
	// unconditional case; set Config.DropEmptyCaptions to drop them instead).
	EmptyCaptions int64 `json:"empty_captions"`
}

// Dropped is the number of samples dropped for any sample reason (shard reasons count shards and are
// left out).
func (s Stats) Dropped() int64 {
	var n int64
	for _, name := range SampleReasons {
		n += s.Drops[name]
	}
	return n
}

// String is a one-line summary for a progress line, e.g. "epoch 0 shards 3 read 120 ok 100 (jpeg 90
// png 10) dropped 20 (missing_caption 15 undecodable_image 5) skipped shards (missing_file 1)".
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "epoch %d shards %d read %d ok %d", s.Epoch, s.Shards, s.Read, s.Delivered)
	if len(s.Kinds) > 0 {
		b.WriteString(" (" + joinCounts(s.Kinds) + ")")
	}
	if s.EmptyCaptions > 0 {
		fmt.Fprintf(&b, " empty captions %d", s.EmptyCaptions)
	}
	samples, shards := map[string]int64{}, map[string]int64{}
	for _, name := range SampleReasons {
		samples[name] = s.Drops[name]
	}
	for _, name := range ShardReasons {
		shards[name] = s.Drops[name]
	}
	fmt.Fprintf(&b, " dropped %d", s.Dropped())
	if j := joinCounts(samples); j != "" {
		b.WriteString(" (" + j + ")")
	}
	if j := joinCounts(shards); j != "" {
		b.WriteString(" skipped shards (" + j + ")")
	}
	return b.String()
}

// Metrics flattens the counters for a metrics log: "data/read", "data/delivered", "data/kind/jpeg",
// "data/drop/<reason>" for every reason, including zeros so that every log line has the same columns.
func (s Stats) Metrics() map[string]float64 {
	m := map[string]float64{
		"data/epoch": float64(s.Epoch), "data/shards": float64(s.Shards), "data/read": float64(s.Read),
		"data/delivered": float64(s.Delivered), "data/dropped": float64(s.Dropped()),
		"data/empty_captions": float64(s.EmptyCaptions),
	}
	for k, v := range s.Kinds {
		m["data/kind/"+k] = float64(v)
	}
	for _, name := range reasonNames {
		m["data/drop/"+name] = float64(s.Drops[name])
	}
	return m
}

// joinCounts writes nonzero counts as "a 1 b 2", largest first, then by name.
func joinCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// statsOf builds Stats from the reader's and batcher's counters.
func statsOf(epoch int, reader, batcher counts, delivered, batches int64, kinds map[string]int64, emptyCaptions int64) Stats {
	all := reader
	all.add(batcher)
	s := Stats{Epoch: epoch, Shards: all.shards, Read: all.read, Delivered: delivered, Batches: batches,
		Kinds: map[string]int64{}, Drops: map[string]int64{}, EmptyCaptions: emptyCaptions}
	for k, v := range kinds {
		s.Kinds[k] = v
	}
	for r, v := range all.drops {
		if v != 0 {
			s.Drops[reason(r).String()] = v
		}
	}
	return s
}

// split turns saved Stats back into the reader's and the batcher's counters.
func (s Stats) split() (reader, batcher counts) {
	reader.shards, reader.read = s.Shards, s.Read
	for r := reason(0); r < numReasons; r++ {
		if r.decodeStage() {
			batcher.drops[r] = s.Drops[r.String()]
		} else {
			reader.drops[r] = s.Drops[r.String()]
		}
	}
	return reader, batcher
}
