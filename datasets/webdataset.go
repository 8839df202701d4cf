package datasets

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// WebDataset member suffixes, in order of preference, as the diffusers LCM scripts' `to_tuple`
// ("jpg;png;jpeg;webp", "text;txt;caption") select them; "txt" is tried first here because it is by far
// the most common.
var (
	imageSuffixes   = []string{"jpg", "png", "jpeg", "webp"}
	captionSuffixes = []string{"txt", "text", "caption"}
)

// splitKey splits a tar member name into WebDataset's sample key and suffix: the key is the directory
// plus the base name up to its first dot, the suffix the rest, lower-cased (webdataset's base_plus_ext).
func splitKey(name string) (key, suffix string, ok bool) {
	dir, base := path.Split(name)
	i := strings.IndexByte(base, '.')
	if i <= 0 || i == len(base)-1 {
		return "", "", false
	}
	return dir + base[:i], strings.ToLower(base[i+1:]), true
}

// wanted reports whether a member with this suffix is kept; others are skipped unread.
func wanted(suffix string) bool {
	return suffix == "json" || contains(imageSuffixes, suffix) || contains(captionSuffixes, suffix)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// tarGroup collects the members of one sample.
type tarGroup struct {
	key     string
	seen    map[string]bool
	members map[string][]byte
	drop    reason
	dropped bool
	msg     string
}

func (g *tarGroup) sample(shard, offset int) *rawSample {
	r := &rawSample{shard: shard, offset: offset, key: g.key, meta: g.members["json"],
		drop: g.drop, dropped: g.dropped, dropMsg: g.msg}
	for _, s := range imageSuffixes {
		if b, ok := g.members[s]; ok {
			r.image = b
			break
		}
	}
	for _, s := range captionSuffixes {
		if b, ok := g.members[s]; ok {
			r.captions = []string{strings.TrimSpace(string(b))}
			break
		}
	}
	if r.dropMsg == "" {
		r.dropMsg = g.key
	}
	return r
}

// streamTar reads WebDataset shard idx and calls emit for each sample at offset from or later. Members
// are grouped by key: a new sample starts when the key changes or a suffix repeats within the current
// one. It returns how many samples the shard held up to where it stopped, and a *shardError when the
// tar is truncated or corrupt (the sample being read is then emitted as truncated_sample), when the
// shard is missing, or when its pipe: command fails.
func streamTar(ctx context.Context, name string, idx, from int, cfg *Config, emit func(*rawSample) bool) (int, error) {
	s, err := openStream(ctx, name, cfg.ReadTimeout)
	if err != nil {
		return 0, err
	}
	tr := tar.NewReader(s.r)
	n := 0
	var cur *tarGroup
	// flush hands the current group on; false means emit asked to stop.
	flush := func() bool {
		if cur == nil {
			return true
		}
		g, off := cur, n
		cur = nil
		n++
		if off < from {
			return true
		}
		return emit(g.sample(idx, off))
	}
	fail := func(err error) (int, error) {
		if cur != nil {
			cur.drop, cur.dropped, cur.msg = dropTruncatedSample, true, cur.key
			flush()
		}
		s.finish(false)
		return n, asShardError(err, name)
	}
	for {
		if ctx.Err() != nil {
			s.finish(false)
			return n, nil
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		key, suffix, ok := splitKey(hdr.Name)
		if !ok {
			continue
		}
		if cur != nil && (cur.key != key || cur.seen[suffix]) {
			if !flush() {
				s.finish(false)
				return n, nil
			}
		}
		if cur == nil {
			cur = &tarGroup{key: key, seen: map[string]bool{}, members: map[string][]byte{}}
		}
		cur.seen[suffix] = true
		if n < from || !wanted(suffix) {
			continue // tar.Reader skips the unread data
		}
		if hdr.Size > maxImageBytes {
			cur.drop, cur.dropped, cur.msg = dropTooLarge, true, fmt.Sprintf("%s: %d bytes", hdr.Name, hdr.Size)
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return fail(err)
		}
		cur.members[suffix] = data
	}
	if !flush() {
		s.finish(false)
		return n, nil
	}
	if err := s.finish(true); err != nil {
		return n, asShardError(err, name)
	}
	return n, nil
}

// asShardError keeps a *shardError as it is (a pipe that failed, a stream that went silent) and counts
// anything else that stops a tar as truncated_tar.
func asShardError(err error, name string) error {
	var se *shardError
	if errors.As(err, &se) {
		return se
	}
	return shardErr(dropTruncatedTar, "%s: %v", name, err)
}
