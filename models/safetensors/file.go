package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors index: %w", err)
	}
	var idx shardIndex
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("safetensors index %s: %w", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors index %s: weight_map is missing or empty", path)
	}
	out := &File{Path: path, Metadata: map[string]string{}, Tensors: make(map[string]*Tensor, len(idx.WeightMap))}
	for k, v := range idx.Metadata {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out.Metadata[k] = s
		} else {
			out.Metadata[k] = string(v)
		}
	}

	// Group names by shard; read shards in sorted order so errors are deterministic.
	byShard := map[string][]string{}
	for name, shard := range idx.WeightMap {
		if shard == "" || filepath.IsAbs(shard) || filepath.Base(shard) != shard {
			return nil, fmt.Errorf("safetensors index %s: tensor %q has shard %q, want a file name in the same folder", path, name, shard)
		}
		byShard[shard] = append(byShard[shard], name)
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	dir := filepath.Dir(path)
	for _, shard := range shards {
		f, err := ReadFile(filepath.Join(dir, shard))
		if err != nil {
			return nil, fmt.Errorf("safetensors index %s: %w", path, err)
		}
		for _, name := range byShard[shard] {
			if f.Tensors[name] == nil {
				return nil, fmt.Errorf("safetensors index %s: tensor %q should be in shard %s, which does not hold it", path, name, shard)
			}
		}
		for _, name := range f.Names() {
			if idx.WeightMap[name] != shard {
				return nil, fmt.Errorf("safetensors index %s: shard %s holds tensor %q, which weight_map puts in %q", path, shard, name, idx.WeightMap[name])
			}
			out.Tensors[name] = f.Tensors[name]
		}
	}
	return out, nil
}
