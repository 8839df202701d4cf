package datasets

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// folderEntry is one sample of an image folder, as listed before any file is read.
type folderEntry struct {
	file     string   // image path relative to the folder
	captions []string // from metadata.jsonl; nil means "read the .txt beside the image"
	meta     []byte   // the metadata.jsonl line
	drop     reason
	dropped  bool
	msg      string
}

var folderImageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".webp": true}

// listImageFolder lists an image folder the way Hugging Face's imagefolder builder does: the lines
// of metadata.jsonl, in order, each naming its image in "file_name" and its caption in captionField (a
// string or a list of strings); without metadata.jsonl, every image under dir in path order, captioned
// by the .txt file with the same name.
func listImageFolder(dir, captionField string) ([]folderEntry, error) {
	f, err := os.Open(filepath.Join(dir, "metadata.jsonl"))
	if err == nil {
		defer f.Close()
		var entries []folderEntry
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<16), 1<<24)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" {
				continue
			}
			entries = append(entries, parseMetadataLine([]byte(text), captionField, line))
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s/metadata.jsonl: %w", dir, err)
		}
		return entries, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var entries []folderEntry
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && folderImageExts[strings.ToLower(filepath.Ext(p))] {
			rel, _ := filepath.Rel(dir, p)
			entries = append(entries, folderEntry{file: filepath.ToSlash(rel)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].file < entries[j].file })
	return entries, nil
}

// parseMetadataLine reads one metadata.jsonl line; a bad line becomes an entry dropped as bad_metadata
// so that it keeps its offset.
func parseMetadataLine(line []byte, captionField string, n int) folderEntry {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return folderEntry{drop: dropBadMetadata, dropped: true, msg: fmt.Sprintf("metadata.jsonl line %d: %v", n, err)}
	}
	e := folderEntry{meta: line}
	if err := json.Unmarshal(m["file_name"], &e.file); err != nil || e.file == "" {
		return folderEntry{drop: dropMissingImage, dropped: true, msg: fmt.Sprintf("metadata.jsonl line %d: no file_name", n)}
	}
	var one string
	var many []string
	raw := m[captionField]
	switch {
	case json.Unmarshal(raw, &one) == nil && raw != nil && string(raw) != "null":
		e.captions = []string{one}
	case json.Unmarshal(raw, &many) == nil:
		e.captions = many
		if e.captions == nil {
			e.captions = []string{} // present but null or empty: missing, not "look for a .txt"
		}
	default:
		e.captions = []string{}
	}
	return e
}

// streamFolder reads image-folder shard idx (listed once in entries) from offset from on.
func streamFolder(ctx context.Context, dir string, entries []folderEntry, idx, from int, emit func(*rawSample) bool) (int, error) {
	for off := from; off < len(entries); off++ {
		if ctx.Err() != nil {
			return off, nil
		}
		e := entries[off]
		r := &rawSample{shard: idx, offset: off, key: e.file, captions: e.captions, meta: e.meta,
			drop: e.drop, dropped: e.dropped, dropMsg: e.msg}
		if !r.dropped {
			img, err := readFileLimited(filepath.Join(dir, filepath.FromSlash(e.file)))
			if err != nil {
				r.drop, r.dropped, r.dropMsg = dropMissingImage, true, err.Error()
				if errors.Is(err, errTooLarge) {
					r.drop = dropTooLarge
				}
			}
			r.image = img
		}
		if !r.dropped && e.captions == nil {
			txt := filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(e.file, filepath.Ext(e.file))+".txt"))
			if b, err := os.ReadFile(txt); err == nil {
				r.captions = []string{strings.TrimSpace(string(b))}
			}
		}
		if !emit(r) {
			return off + 1, nil
		}
	}
	return len(entries), nil
}

var errTooLarge = errors.New("file too large")

func readFileLimited(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.Size() > maxImageBytes {
		return nil, fmt.Errorf("%s: %d bytes: %w", name, fi.Size(), errTooLarge)
	}
	return os.ReadFile(name)
}
