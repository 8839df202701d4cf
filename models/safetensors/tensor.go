// Package safetensors reads and writes the safetensors format
// (https://github.com/huggingface/safetensors) that diffusers and transformers use for weights,
// plus sharded checkpoints described by a "*.safetensors.index.json" file.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a
// multiple of 8 by the writers we match), then the raw little-endian tensor bytes. Tensors are kept
// as raw bytes; Float32 and Int64 convert on demand, including F16 and BF16, whose conversions are
// implemented here (round-to-nearest-even on the way down).
//
// Malformed files give errors naming the file and the problem; the header parser never panics and
// never allocates more than the input justifies (FuzzParseHeader checks this).
//
// It depends only on the Go standard library.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// DType is a safetensors dtype name as it appears in the header.
type DType string

// The dtypes this package knows. Other safetensors dtypes (F8_*, U16, ...) are rejected with an error.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// Valid reports whether d is one of the dtypes this package knows.
func (d DType) Valid() bool { return d.Size() > 0 }

// IsFloat reports whether d is a floating point dtype.
func (d DType) IsFloat() bool { return d == F64 || d == F32 || d == F16 || d == BF16 }

// Tensor is one named tensor: its dtype, shape and raw little-endian bytes.
// Tensors read from a file share one backing buffer; Data is capped, so appending to it copies.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar with shape []).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// check verifies that Data holds exactly NumElements elements of DType.
func (t *Tensor) check() error {
	size := t.DType.Size()
	if size == 0 {
		return fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.DType)
	}
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
		}
		if d != 0 && n > math.MaxInt64/int64(d) {
			return fmt.Errorf("tensor %q: shape %v overflows", t.Name, t.Shape)
		}
		n *= int64(d)
	}
	if n > math.MaxInt64/int64(size) || int64(len(t.Data)) != n*int64(size) {
		return fmt.Errorf("tensor %q: %s shape %v needs %d elements of %d bytes, data has %d bytes",
			t.Name, t.DType, t.Shape, n, size, len(t.Data))
	}
	return nil
}

// Float32 converts the tensor to float32. Floats are converted (F64 rounds), integers and BOOL
// are converted by value.
func (t *Tensor) Float32() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	out := make([]float32, t.NumElements())
	switch t.DType {
	case F32, F64, F16, BF16:
		if err := ReadFloat32(bytes.NewReader(t.Data), t.DType, out); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
	default:
		ints, err := t.Int64()
		if err != nil {
			return nil, err
		}
		for i, v := range ints {
			out[i] = float32(v)
		}
	}
	return out, nil
}

// Int64 converts an integer or BOOL tensor to int64. Float tensors give an error: converting them
// would hide a wrong dtype.
func (t *Tensor) Int64() ([]int64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	b := t.Data
	out := make([]int64, t.NumElements())
	le := binary.LittleEndian
	switch t.DType {
	case I64:
		for i := range out {
			out[i] = int64(le.Uint64(b[8*i:]))
		}
	case I32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(b[4*i:])))
		}
	case I16:
		for i := range out {
			out[i] = int64(int16(le.Uint16(b[2*i:])))
		}
	case I8:
		for i := range out {
			out[i] = int64(int8(b[i]))
		}
	case U8, Bool:
		for i := range out {
			out[i] = int64(b[i])
		}
	default:
		return nil, fmt.Errorf("tensor %q: dtype %s is not an integer dtype", t.Name, t.DType)
	}
	return out, nil
}

// FromFloat32 makes an F32 tensor. The shape is copied; the data is encoded into new bytes.
func FromFloat32(name string, shape []int, data []float32) *Tensor {
	t, err := FromFloat32As(name, F32, shape, data)
	if err != nil {
		panic(err) // F32 never fails the dtype check
	}
	return t
}

// FromFloat32As makes a tensor of a float dtype (F32, F16, BF16 or F64) from float32 values.
// F16 and BF16 round to nearest even. It does not check data against shape; WriteFile does.
func FromFloat32As(name string, dtype DType, shape []int, data []float32) (*Tensor, error) {
	if !dtype.IsFloat() {
		return nil, fmt.Errorf("tensor %q: FromFloat32As wants F32, F16, BF16 or F64, got %q", name, dtype)
	}
	size := dtype.Size()
	b := make([]byte, size*len(data))
	le := binary.LittleEndian
	switch dtype {
	case F32:
		for i, v := range data {
			le.PutUint32(b[4*i:], math.Float32bits(v))
		}
	case F64:
		for i, v := range data {
			le.PutUint64(b[8*i:], math.Float64bits(float64(v)))
		}
	case F16:
		for i, v := range data {
			le.PutUint16(b[2*i:], Float32ToFloat16(v))
		}
	case BF16:
		for i, v := range data {
			le.PutUint16(b[2*i:], Float32ToBFloat16(v))
		}
	}
	return &Tensor{Name: name, DType: dtype, Shape: append([]int{}, shape...), Data: b}, nil
}

// FromInt64 makes an I64 tensor. The shape is copied; the data is encoded into new bytes.
func FromInt64(name string, shape []int, data []int64) *Tensor {
	b := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(v))
	}
	return &Tensor{Name: name, DType: I64, Shape: append([]int{}, shape...), Data: b}
}
