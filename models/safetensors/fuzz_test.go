package safetensors

import (
	"math/big"
	"testing"
)

// FuzzParseHeader checks that no header makes the parser panic or accept something inconsistent:
// every accepted entry must lie inside the data section with a span matching its shape and dtype,
// and entries must not overlap.
func FuzzParseHeader(f *testing.F) {
	seeds := []struct {
		header   string
		dataSize int64
	}{
		{`{}`, 0},
		{`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8},
		{`{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}`, 16},
		{`{"a":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}    `, 0},
		{`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4},
		{`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, 0},
		{`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[1],"data_offsets":[7,8]}}`, 8},
		{`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4},
		{`{"a":1}`, 0},
		{`null`, 0},
	}
	for _, s := range seeds {
		f.Add([]byte(s.header), s.dataSize)
	}
	f.Fuzz(func(t *testing.T, header []byte, dataSize int64) {
		h, err := ParseHeader(header, dataSize)
		if err != nil {
			return
		}
		var prevName string
		for i, e := range h.Entries {
			if i > 0 && e.Name <= prevName {
				t.Fatalf("entries not sorted or duplicated: %q after %q", e.Name, prevName)
			}
			prevName = e.Name
			if e.Begin < 0 || e.End < e.Begin || e.End > dataSize {
				t.Fatalf("%q: offsets [%d,%d] outside %d", e.Name, e.Begin, e.End, dataSize)
			}
			// Exact arithmetic as the oracle for shape * dtype size == span.
			n := big.NewInt(int64(e.DType.Size()))
			for _, d := range e.Shape {
				if d < 0 {
					t.Fatalf("%q: negative dimension accepted: %v", e.Name, e.Shape)
				}
				n.Mul(n, big.NewInt(int64(d)))
			}
			if n.Cmp(big.NewInt(e.End-e.Begin)) != 0 || e.DType.Size() == 0 {
				t.Fatalf("%q: %s %v accepted with span %d", e.Name, e.DType, e.Shape, e.End-e.Begin)
			}
			for _, o := range h.Entries[:i] {
				if e.Begin < o.End && o.Begin < e.End {
					t.Fatalf("%q and %q overlap", e.Name, o.Name)
				}
			}
		}
	})
}
