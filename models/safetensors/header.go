package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// MaxHeaderSize caps the JSON header. The reference implementation uses 100 MB; real headers are
// at most a few MB, so a larger length means a corrupt or hostile file.
const MaxHeaderSize = 100 << 20

// metadataKey is the reserved header key for the string-to-string metadata map.
const metadataKey = "__metadata__"

// Header is a parsed safetensors header.
type Header struct {
	Metadata map[string]string // nil when the file has none
	Entries  []HeaderEntry     // sorted by name
}

// HeaderEntry locates one tensor in the data section: bytes [Begin, End) after the header.
type HeaderEntry struct {
	Name       string
	DType      DType
	Shape      []int
	Begin, End int64
}

// ParseHeader parses and validates a header (the JSON after the 8-byte length) for a data section
// of dataSize bytes. It checks dtypes, shapes (no negative dimensions, no overflow), that each
// tensor's byte span matches its shape and dtype, lies inside the data section, and overlaps no
// other tensor. Gaps between tensors are allowed. Errors do not name a file; callers add it.
func ParseHeader(header []byte, dataSize int64) (*Header, error) {
	if len(header) > MaxHeaderSize {
		return nil, fmt.Errorf("header is %d bytes, over the %d byte limit", len(header), MaxHeaderSize)
	}
	if dataSize < 0 {
		return nil, fmt.Errorf("negative data size %d", dataSize)
	}
	trimmed := bytes.TrimLeft(header, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("header is not a JSON object")
	}
	raw, err := decodeObject(header)
	if err != nil {
		return nil, fmt.Errorf("header JSON: %w", err)
	}

	h := &Header{Entries: make([]HeaderEntry, 0, len(raw))}
	for _, kv := range raw {
		if kv.key == metadataKey {
			if err := json.Unmarshal(kv.value, &h.Metadata); err != nil {
				return nil, fmt.Errorf("header %s: want an object of strings: %w", metadataKey, err)
			}
			continue
		}
		e, err := parseEntry(kv.key, kv.value, dataSize)
		if err != nil {
			return nil, err
		}
		h.Entries = append(h.Entries, e)
	}

	// Overlap check on the entries ordered by position; zero-length tensors overlap nothing.
	byPos := make([]*HeaderEntry, len(h.Entries))
	for i := range h.Entries {
		byPos[i] = &h.Entries[i]
	}
	sort.Slice(byPos, func(i, j int) bool {
		if byPos[i].Begin != byPos[j].Begin {
			return byPos[i].Begin < byPos[j].Begin
		}
		return byPos[i].End < byPos[j].End
	})
	var prev *HeaderEntry
	for _, e := range byPos {
		if e.Begin == e.End {
			continue
		}
		if prev != nil && e.Begin < prev.End {
			return nil, fmt.Errorf("tensor %q data_offsets [%d,%d] overlap tensor %q [%d,%d]",
				e.Name, e.Begin, e.End, prev.Name, prev.Begin, prev.End)
		}
		prev = e
	}
	sort.Slice(h.Entries, func(i, j int) bool { return h.Entries[i].Name < h.Entries[j].Name })
	return h, nil
}

// entryJSON is one tensor's header record. Pointers tell a missing field from a zero one.
type entryJSON struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

func parseEntry(name string, value json.RawMessage, dataSize int64) (HeaderEntry, error) {
	var ej entryJSON
	if err := json.Unmarshal(value, &ej); err != nil {
		return HeaderEntry{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	// encoding/json matches field names case-insensitively; the format does not.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(value, &fields); err != nil {
		return HeaderEntry{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	for _, k := range []string{"dtype", "shape", "data_offsets"} {
		if _, ok := fields[k]; !ok {
			return HeaderEntry{}, fmt.Errorf("tensor %q: missing %q", name, k)
		}
	}
	if ej.DType == nil || ej.Shape == nil || ej.DataOffsets == nil {
		return HeaderEntry{}, fmt.Errorf("tensor %q: dtype, shape and data_offsets must not be null", name)
	}
	e := HeaderEntry{Name: name, DType: DType(*ej.DType)}
	size := int64(e.DType.Size())
	if size == 0 {
		return HeaderEntry{}, fmt.Errorf("tensor %q: unknown dtype %q", name, *ej.DType)
	}
	offs := *ej.DataOffsets
	if len(offs) != 2 {
		return HeaderEntry{}, fmt.Errorf("tensor %q: data_offsets has %d values, want 2", name, len(offs))
	}
	e.Begin, e.End = offs[0], offs[1]
	if e.Begin < 0 || e.End < e.Begin || e.End > dataSize {
		return HeaderEntry{}, fmt.Errorf("tensor %q: data_offsets [%d,%d] out of range for %d data bytes",
			name, e.Begin, e.End, dataSize)
	}
	// The element count is bounded by the span, so the product is checked against it, which also
	// rules out overflow; any zero dimension makes the tensor empty whatever the other dimensions.
	maxElems := (e.End - e.Begin) / size
	e.Shape = make([]int, len(*ej.Shape))
	n, hasZero, tooBig := int64(1), false, false
	for i, d := range *ej.Shape {
		if d < 0 || d > math.MaxInt {
			return HeaderEntry{}, fmt.Errorf("tensor %q: bad dimension %d in shape %v", name, d, *ej.Shape)
		}
		e.Shape[i] = int(d)
		switch {
		case d == 0:
			hasZero = true
		case n > maxElems/d:
			tooBig = true
		default:
			n *= d
		}
	}
	if hasZero {
		n, tooBig = 0, false
	}
	if tooBig || n*size != e.End-e.Begin {
		return HeaderEntry{}, fmt.Errorf("tensor %q: %s shape %v needs %s bytes, data_offsets [%d,%d] span %d",
			name, e.DType, *ej.Shape, shapeBytes(*ej.Shape, size), e.Begin, e.End, e.End-e.Begin)
	}
	return e, nil
}

// shapeBytes formats the byte size a shape needs, saying "more than 2^63" on overflow.
func shapeBytes(shape []int64, size int64) string {
	n := int64(size)
	for _, d := range shape {
		if d == 0 {
			return "0"
		}
	}
	for _, d := range shape {
		if n > math.MaxInt64/d {
			return "more than 2^63"
		}
		n *= d
	}
	return fmt.Sprint(n)
}

type keyValue struct {
	key   string
	value json.RawMessage
}

// decodeObject decodes a JSON object into its key/value pairs in order, rejecting duplicate keys
// (encoding/json would silently keep the last one) and trailing content other than whitespace.
func decodeObject(data []byte) ([]keyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var out []keyValue
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected %v", tok)
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		out = append(out, keyValue{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the header object")
	}
	return out, nil
}
