package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// File is a loaded checkpoint: every tensor by name plus the header metadata.
type File struct {
	Path     string
	Metadata map[string]string
	Tensors  map[string]*Tensor
}

// Names lists the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for name := range f.Tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// ReadHeader reads and validates only the header of a .safetensors file.
func ReadHeader(path string) (*Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	h, _, err := readHeader(f, path)
	return h, err
}

// readHeader reads the length prefix and the header, returning the parsed header and the data
// section size. Lengths are checked against the file size before anything is allocated.
func readHeader(f *os.File, path string) (*Header, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("safetensors %s: %w", path, err)
	}
	size := st.Size()
	var prefix [8]byte
	if _, err := io.ReadFull(f, prefix[:]); err != nil {
		return nil, 0, fmt.Errorf("safetensors %s: file is %d bytes, too short for the 8-byte header length", path, size)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n > MaxHeaderSize {
		return nil, 0, fmt.Errorf("safetensors %s: header length %d is over the %d byte limit (corrupt or not a safetensors file)", path, n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, 0, fmt.Errorf("safetensors %s: header length %d is beyond the file size %d (truncated or not a safetensors file)", path, n, size)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(f, header); err != nil {
		return nil, 0, fmt.Errorf("safetensors %s: reading header: %w", path, err)
	}
	dataSize := size - 8 - int64(n)
	h, err := ParseHeader(header, dataSize)
	if err != nil {
		return nil, 0, fmt.Errorf("safetensors %s: %w", path, err)
	}
	return h, dataSize, nil
}

// ReadFile reads a whole .safetensors file into memory.
func ReadFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	h, dataSize, err := readHeader(f, path)
	if err != nil {
		return nil, err
	}
	data := make([]byte, dataSize)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("safetensors %s: reading %d data bytes: %w", path, dataSize, err)
	}
	out := &File{Path: path, Metadata: h.Metadata, Tensors: make(map[string]*Tensor, len(h.Entries))}
	for _, e := range h.Entries {
		out.Tensors[e.Name] = &Tensor{Name: e.Name, DType: e.DType, Shape: e.Shape, Data: data[e.Begin:e.End:e.End]}
	}
	return out, nil
}

// IndexSuffix ends the name of a sharded checkpoint's index file, as in
// "diffusion_pytorch_model.safetensors.index.json". Variant indexes ("...safetensors.index.fp16.json")
// are read the same way.
const IndexSuffix = ".safetensors.index.json"

// shardIndex is the JSON written by transformers/diffusers save_pretrained for sharded weights.
type shardIndex struct {
	Metadata  map[string]json.RawMessage `json:"metadata"`
	WeightMap map[string]string          `json:"weight_map"`
}

// IsIndex reports whether path names a sharded-checkpoint index rather than a .safetensors file.
func IsIndex(path string) bool {
	base := filepath.Base(path)
	return strings.HasSuffix(base, ".json") && strings.Contains(base, ".safetensors.index.")
}

// ReadCheckpoint reads a .safetensors file, or a sharded checkpoint given by its index JSON. For a
// shard index, every shard named in weight_map is read (relative to the index's folder), every name
// must be in the shard the index says, and a shard may hold no tensor the index does not list.
// The returned File has Path = the index path and Metadata = the index metadata (values as JSON
// text, strings unquoted, e.g. "total_size").
func ReadCheckpoint(path string) (*File, error) {
	if !IsIndex(path) {
		return ReadFile(path)
	}
	idx, err := readIndex(path)
	if err != nil {
		return nil, err
	}
	out := &File{Path: path, Metadata: idx.metadata, Tensors: make(map[string]*Tensor, len(idx.weightMap))}
	for _, shard := range idx.shards {
		f, err := ReadFile(filepath.Join(filepath.Dir(path), shard))
		if err != nil {
			return nil, fmt.Errorf("safetensors index %s: %w", path, err)
		}
		if err := idx.check(path, shard, f.Names()); err != nil {
			return nil, err
		}
		maps.Copy(out.Tensors, f.Tensors)
	}
	return out, nil
}

// index is a parsed shard index: weight_map, its metadata (values as JSON
// text, strings unquoted), and the shards it names, sorted (so errors are
// deterministic), each with the names the index puts in it.
type index struct {
	weightMap map[string]string
	metadata  map[string]string
	shards    []string
	byShard   map[string][]string
}

func readIndex(path string) (*index, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors index: %w", err)
	}
	var si shardIndex
	if err := json.Unmarshal(raw, &si); err != nil {
		return nil, fmt.Errorf("safetensors index %s: %w", path, err)
	}
	if len(si.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors index %s: weight_map is missing or empty", path)
	}
	idx := &index{weightMap: si.WeightMap, metadata: map[string]string{}, byShard: map[string][]string{}}
	for k, v := range si.Metadata {
		var s string
		if json.Unmarshal(v, &s) == nil {
			idx.metadata[k] = s
		} else {
			idx.metadata[k] = string(v)
		}
	}
	for name, shard := range si.WeightMap {
		if shard == "" || filepath.IsAbs(shard) || filepath.Base(shard) != shard {
			return nil, fmt.Errorf("safetensors index %s: tensor %q has shard %q, want a file name in the same folder", path, name, shard)
		}
		idx.byShard[shard] = append(idx.byShard[shard], name)
	}
	for s := range idx.byShard {
		idx.shards = append(idx.shards, s)
	}
	sort.Strings(idx.shards)
	return idx, nil
}

// check compares the names a shard holds (sorted) with the index's: every
// name the index puts in the shard is there, and nothing else.
func (idx *index) check(path, shard string, names []string) error {
	for _, name := range idx.byShard[shard] {
		if _, found := slices.BinarySearch(names, name); !found {
			return fmt.Errorf("safetensors index %s: tensor %q should be in shard %s, which does not hold it", path, name, shard)
		}
	}
	for _, name := range names {
		if idx.weightMap[name] != shard {
			return fmt.Errorf("safetensors index %s: shard %s holds tensor %q, which weight_map puts in %q", path, shard, name, idx.weightMap[name])
		}
	}
	return nil
}
