package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"unsafe"
)

// WalkCheckpoint visits every tensor of a .safetensors file, or of a
// sharded checkpoint given by its index (checked as ReadCheckpoint checks
// it), one at a time in file order: fn gets the tensor's header entry and a
// reader of exactly its bytes. Unlike ReadCheckpoint, which holds the whole
// data section while the caller converts it, memory holds only what fn
// keeps: an SD 1.5 UNet loads with its 3.4 GB once, not twice.
func WalkCheckpoint(path string, fn func(e HeaderEntry, data io.Reader) error) error {
	if !IsIndex(path) {
		return walkFile(path, nil, fn)
	}
	idx, err := readIndex(path)
	if err != nil {
		return err
	}
	for _, shard := range idx.shards {
		check := func(h *Header) error {
			names := make([]string, len(h.Entries))
			for i, e := range h.Entries {
				names[i] = e.Name
			}
			return idx.check(path, shard, names)
		}
		if err := walkFile(filepath.Join(filepath.Dir(path), shard), check, fn); err != nil {
			return fmt.Errorf("safetensors index %s: %w", path, err)
		}
	}
	return nil
}

// walkFile visits one file's tensors in the order of their bytes, after
// check (if any) accepts its header.
func walkFile(path string, check func(*Header) error, fn func(HeaderEntry, io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	h, dataSize, err := readHeader(f, path)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(h); err != nil {
			return err
		}
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("safetensors %s: %w", path, err)
	}
	start := st.Size() - dataSize
	entries := slices.Clone(h.Entries)
	slices.SortFunc(entries, func(a, b HeaderEntry) int { return int(a.Begin - b.Begin) })
	for _, e := range entries {
		if err := fn(e, io.NewSectionReader(f, start+e.Begin, e.End-e.Begin)); err != nil {
			return fmt.Errorf("safetensors %s: tensor %q: %w", path, e.Name, err)
		}
	}
	return nil
}

// littleEndian: float32 bytes on this machine are as the file stores them.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// ReadFloat32 fills out with a tensor's values of dtype read from r (F32,
// F64 rounded, F16 and BF16 widened): F32 straight into out on a
// little-endian machine, the others through a small buffer.
func ReadFloat32(r io.Reader, dtype DType, out []float32) error {
	if dtype == F32 && littleEndian {
		_, err := io.ReadFull(r, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), 4*len(out)))
		return err
	}
	size := dtype.Size()
	if !dtype.IsFloat() {
		return fmt.Errorf("dtype %s is not a float", dtype)
	}
	le := binary.LittleEndian
	buf := make([]byte, size*min(len(out), 1<<16))
	for done := 0; done < len(out); {
		n := min(len(out)-done, len(buf)/size)
		b := buf[:n*size]
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		dst := out[done : done+n]
		for i := range dst {
			switch dtype {
			case F32:
				dst[i] = math.Float32frombits(le.Uint32(b[4*i:]))
			case F64:
				dst[i] = float32(math.Float64frombits(le.Uint64(b[8*i:])))
			case F16:
				dst[i] = Float16ToFloat32(le.Uint16(b[2*i:]))
			case BF16:
				dst[i] = BFloat16ToFloat32(le.Uint16(b[2*i:]))
			}
		}
		done += n
	}
	return nil
}
