package datasets

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ConvertToWebDataset reads src (an image folder, parquet files, or WebDataset shards to re-shard) in
// source order and writes WebDataset tar shards of samplesPerShard samples to outPattern, a printf
// pattern with one integer verb ("out/%05d.tar"). Each sample is written as "<index>.<jpg|png|webp>"
// (the original bytes, not re-encoded), "<index>.txt" (its first caption) and "<index>.json" (its
// metadata plus "key", "source", every caption when there are several, and the image size under
// WidthField / HeightField unless already present). Images that do not decode and samples without
// image or caption are skipped and counted in the returned Stats, as the loader counts them. Each shard
// is written under a temporary name and renamed when complete.
func ConvertToWebDataset(src Config, outPattern string, samplesPerShard int) (Stats, error) {
	if err := checkShardPattern(outPattern, samplesPerShard); err != nil {
		return Stats{}, err
	}
	src.ShuffleBuffer, src.Epochs, src.BatchSize, src.RandomFlip = 0, 1, 1, false
	l, err := open(src, nil, loadVerify)
	if err != nil {
		return Stats{}, err
	}
	defer l.Close()
	w := &shardWriter{pattern: outPattern}
	for i := 0; ; i++ {
		b, err := l.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.abort()
			return l.Stats(), err
		}
		if i > 0 && i%samplesPerShard == 0 {
			if err := w.close(); err != nil {
				return l.Stats(), err
			}
		}
		if err := w.write(fmt.Sprintf("%09d", i), b.Samples[0], &l.cfg); err != nil {
			w.abort()
			return l.Stats(), err
		}
	}
	return l.Stats(), w.close()
}

// checkShardPattern checks the output of a conversion: a printf pattern with one integer verb and a
// positive number of samples per shard.
func checkShardPattern(outPattern string, samplesPerShard int) error {
	if samplesPerShard < 1 {
		return fmt.Errorf("datasets convert: %d samples per shard, want at least 1", samplesPerShard)
	}
	if strings.Count(outPattern, "%") != 1 || strings.Contains(fmt.Sprintf(outPattern, 0), "%!") {
		return fmt.Errorf("datasets convert: output pattern %q needs exactly one integer verb, like out/%%05d.tar", outPattern)
	}
	return nil
}

// shardWriter writes one tar shard at a time under a temporary name.
type shardWriter struct {
	pattern string
	next    int
	name    string
	f       *os.File
	tw      *tar.Writer
}

// shardMember is one file of a WebDataset sample: "<key>.<suffix>".
type shardMember struct {
	suffix string
	data   []byte
}

// write appends a sample read by the loader, with its original image bytes.
func (w *shardWriter) write(key string, s Sample, cfg *Config) error {
	r := s.raw
	meta := map[string]any{}
	if r.meta != nil {
		json.Unmarshal(r.meta, &meta) // metadata that is not a JSON object is replaced
	}
	meta["key"], meta["source"] = r.key, s.Source
	if len(r.captions) > 1 {
		meta["captions"] = r.captions
	}
	if _, ok := meta[cfg.WidthField]; !ok {
		meta[cfg.WidthField] = s.OriginalW
	}
	if _, ok := meta[cfg.HeightField]; !ok {
		meta[cfg.HeightField] = s.OriginalH
	}
	js, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("datasets convert: %s: %w", r.key, err)
	}
	ext := map[string]string{"jpeg": "jpg", "png": "png", "webp": "webp"}[s.Kind]
	return w.writeMembers(key, []shardMember{{ext, r.image}, {"txt", []byte(r.captions[0])}, {"json", js}})
}

// writeMembers appends one sample's files to the current shard, starting a shard when none is open.
func (w *shardWriter) writeMembers(key string, members []shardMember) error {
	if w.tw == nil {
		w.name = fmt.Sprintf(w.pattern, w.next)
		w.next++
		if err := os.MkdirAll(filepath.Dir(w.name), 0o755); err != nil {
			return fmt.Errorf("datasets convert: %w", err)
		}
		f, err := os.Create(w.name + ".tmp")
		if err != nil {
			return fmt.Errorf("datasets convert: %w", err)
		}
		w.f, w.tw = f, tar.NewWriter(f)
	}
	for _, m := range members {
		hdr := &tar.Header{Name: key + "." + m.suffix, Mode: 0o644, Size: int64(len(m.data)),
			ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := w.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("datasets convert %s: %w", w.name, err)
		}
		if _, err := w.tw.Write(m.data); err != nil {
			return fmt.Errorf("datasets convert %s: %w", w.name, err)
		}
	}
	return nil
}

// close finishes the current shard and renames it into place.
func (w *shardWriter) close() error {
	if w.tw == nil {
		return nil
	}
	tw, f := w.tw, w.f
	w.tw, w.f = nil, nil
	if err := tw.Close(); err != nil {
		f.Close()
		return fmt.Errorf("datasets convert %s: %w", w.name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("datasets convert %s: %w", w.name, err)
	}
	if err := os.Rename(w.name+".tmp", w.name); err != nil {
		return fmt.Errorf("datasets convert: %w", err)
	}
	return nil
}

// abort removes the shard being written.
func (w *shardWriter) abort() {
	if w.f != nil {
		w.f.Close()
		os.Remove(w.name + ".tmp")
		w.tw, w.f = nil, nil
	}
}
