package datasets

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
)

// rawSample is one sample as a format reader found it, before decoding. Its identity is (shard,
// offset): the shard's index in the expanded source list and the sample's position in that shard,
// counting every sample the shard holds, usable or not, so that offsets do not depend on filters.
type rawSample struct {
	shard, offset int
	key           string
	image         []byte
	captions      []string // candidates; one is chosen per epoch
	meta          []byte   // JSON metadata, nil when absent
	drop          reason   // set by the reader when it already knows the sample is unusable
	dropped       bool
	dropMsg       string
}

// maxImageBytes bounds one encoded image (and one tar member).
const maxImageBytes = 256 << 20

// check returns why r cannot be used, if it cannot: missing parts first, then the metadata filters,
// which read the WebDataset json member or the image folder's metadata.jsonl line.
func (c *Config) check(r *rawSample) (reason, string, bool) {
	if r.dropped {
		return r.drop, r.dropMsg, false
	}
	if len(r.image) == 0 {
		return dropMissingImage, r.key, false
	}
	if len(r.captions) == 0 {
		return dropMissingCaption, r.key, false
	}
	if c.DropEmptyCaptions {
		r.captions = slices.DeleteFunc(r.captions, func(s string) bool { return strings.TrimSpace(s) == "" })
		if len(r.captions) == 0 {
			return dropEmptyCaption, r.key, false
		}
	}
	// Refuse decompression bombs from the header, before the decoder allocates, under their own
	// reason (the decoder's own check would count them as undecodable).
	if w, h, ok := imageDims(r.image); ok && w*h > maxPixels {
		return dropTooLarge, fmt.Sprintf("%s: %dx%d image, more than %d pixels", r.key, w, h, maxPixels), false
	}
	if !c.filtersOn() {
		return 0, "", true
	}
	if r.meta == nil {
		return dropMissingMetadata, r.key, false
	}
	var m map[string]any
	if err := json.Unmarshal(r.meta, &m); err != nil {
		return dropBadMetadata, fmt.Sprintf("%s: %v", r.key, err), false
	}
	// As in diffusers' WebdatasetFilter: a missing size is 0, a missing watermark probability is 1.
	w, h := number(m[c.WidthField], 0), number(m[c.HeightField], 0)
	if (c.MinWidth > 0 && w < float64(c.MinWidth)) || (c.MinHeight > 0 && h < float64(c.MinHeight)) {
		return dropFilteredSize, fmt.Sprintf("%s: %gx%g", r.key, w, h), false
	}
	if p := number(m[c.WatermarkField], 1); c.MaxWatermark > 0 && p > c.MaxWatermark {
		return dropFilteredWatermark, fmt.Sprintf("%s: %s %g", r.key, c.WatermarkField, p), false
	}
	return 0, "", true
}

// number reads a JSON number, or def for a missing, null or non-numeric field.
func number(v any, def float64) float64 {
	if f, ok := v.(float64); ok && !math.IsNaN(f) {
		return f
	}
	return def
}

// chooseCaption picks one of the candidates with the sample's random source (a list-of-strings column
// gives a different caption each epoch, as the diffusers scripts' random.choice does).
func chooseCaption(captions []string, rnd *sampleRand) string {
	if len(captions) == 1 {
		return captions[0]
	}
	return captions[rnd.intN(len(captions))]
}

// sampleRand is the random source of one sample in one epoch: a SplitMix64 stream seeded from the
// seed, the epoch and the sample's identity, so that crops, flips and caption choices do not depend on
// which worker handles the sample or on what was read before it.
type sampleRand struct{ state uint64 }

func newSampleRand(seed int64, epoch, shard, offset int) *sampleRand {
	return &sampleRand{state: mix(uint64(seed), 0x5a4d706c65, uint64(epoch), uint64(shard), uint64(offset))}
}

func (r *sampleRand) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	return splitmix(r.state)
}

// intN returns a uniform integer in [0, n) (Lemire's multiply-shift; the bias is below 2^-32 for the
// sizes used here).
func (r *sampleRand) intN(n int) int { return int((r.next() >> 32) * uint64(n) >> 32) }

// float64 returns a uniform number in [0, 1).
func (r *sampleRand) float64() float64 { return float64(r.next()>>11) / (1 << 53) }

func splitmix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// mix hashes a few integers into one 64-bit value.
func mix(vals ...uint64) uint64 {
	h := uint64(0x243f6a8885a308d3)
	for _, v := range vals {
		h = splitmix(h ^ splitmix(v+0x9e3779b97f4a7c15))
	}
	return h
}
