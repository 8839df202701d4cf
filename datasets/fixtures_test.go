package datasets

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Test fixtures: every test writes its own images, shards, parquet files and folders in t.TempDir().

// testImage is a w×h picture with a gradient and a seed-dependent pattern (so that crops differ).
func testImage(w, h, seed int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			b := 128 + 100*math.Sin(float64(x+7*seed)/9)*math.Cos(float64(y)/13)
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(b), 255})
		}
	}
	return m
}

func jpegBytes(t testing.TB, w, h, seed int) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, testImage(w, h, seed), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func pngBytes(t testing.TB, m image.Image) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// member is one tar member.
type member struct {
	name string
	data []byte
}

func m(name string, data any) member {
	switch d := data.(type) {
	case string:
		return member{name, []byte(d)}
	case []byte:
		return member{name, d}
	}
	panic("member data must be string or []byte")
}

// writeTar writes members as a tar file; cut > 0 truncates the file to that many bytes.
func writeTar(t testing.TB, path string, cut int, members ...member) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, mb := range members {
		if err := tw.WriteHeader(&tar.Header{Name: mb.name, Mode: 0o644, Size: int64(len(mb.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(mb.data)
	}
	tw.Close()
	data := b.Bytes()
	if cut > 0 {
		data = data[:cut]
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tarOffset is the byte offset of member i's data in a tar written by writeTar (512-byte header
// blocks, data padded to 512).
func tarOffset(members []member, i int) int {
	off := 0
	for _, mb := range members[:i] {
		off += 512 + (len(mb.data)+511)/512*512
	}
	return off + 512
}

// collect reads batches until io.EOF and returns them; any other error fails the test.
func collect(t testing.TB, l *Loader) []*Batch {
	t.Helper()
	var out []*Batch
	for {
		b, err := l.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next after %d batches: %v", len(out), err)
		}
		out = append(out, b)
	}
}

// keysAndCaptions lists "key=caption" for every sample of the batches.
func keysAndCaptions(bs []*Batch) []string {
	var out []string
	for _, b := range bs {
		for _, s := range b.Samples {
			out = append(out, s.Key+"="+s.Caption)
		}
	}
	return out
}

func mustLoader(t testing.TB, cfg Config) *Loader {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dropsOf(s Stats) map[string]int64 { return s.Drops }

// ---- WebP fixtures -------------------------------------------------------------------------------
//
// golang.org/x/image can decode WebP but not encode it, so these build minimal valid files by hand:
//   - vp8lBytes: a real VP8L (lossless) bitstream with no transforms and no colour cache, each channel
//     coded with a "simple" prefix code of one or two symbols; it reproduces arbitrary pixels as long
//     as every channel takes at most two values (a two-colour checkerboard here), alpha included.
//   - vp8Bytes: a VP8 (lossy) key frame whose two partitions are all zero bytes. A boolean decoder
//     reading zeros returns 0 for every probability, which here means: no segmentation, no loop
//     filter, quantiser 0, no probability updates, every macroblock B_PRED with B_DC_PRED sub-blocks,
//     chroma DC_PRED, and every block ending at its first token (EOB). The picture is therefore a
//     near-uniform grey (luma 128-129, chroma 128): it exercises the lossy container and decoder path
//     and the YCbCr conversion, not the reproduction of a real photograph.
//   - with alpha, the lossy frame is wrapped in VP8X + ALPH (uncompressed alpha plane).

type bitWriter struct {
	buf   []byte
	acc   uint64
	nbits uint
}

func (w *bitWriter) write(v uint64, n uint) {
	w.acc |= v << w.nbits
	w.nbits += n
	for w.nbits >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.nbits -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.nbits > 0 {
		w.buf = append(w.buf, byte(w.acc))
	}
	return w.buf
}

func riff(chunks ...[]byte) []byte {
	var body []byte
	body = append(body, "WEBP"...)
	for _, c := range chunks {
		body = append(body, c...)
	}
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	return append(out, body...)
}

func chunk(fourcc string, data []byte) []byte {
	c := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	c = append(c, data...)
	if len(data)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

// vp8lBytes encodes pix (row-major, w×h) as a lossless WebP.
func vp8lBytes(w, h int, pix []color.NRGBA) []byte {
	channel := func(get func(color.NRGBA) uint8) []uint8 {
		var vals []uint8
		for _, p := range pix {
			v := get(p)
			if !bytes.Contains(vals, []byte{v}) {
				vals = append(vals, v)
			}
		}
		if len(vals) > 2 {
			panic("vp8lBytes: more than two values in a channel")
		}
		if len(vals) == 2 && vals[0] > vals[1] {
			vals[0], vals[1] = vals[1], vals[0] // symbol order: the smaller value gets code 0
		}
		return vals
	}
	get := []func(color.NRGBA) uint8{
		func(c color.NRGBA) uint8 { return c.G }, func(c color.NRGBA) uint8 { return c.R },
		func(c color.NRGBA) uint8 { return c.B }, func(c color.NRGBA) uint8 { return c.A },
	}
	var bw bitWriter
	bw.write(0x2f, 8)
	bw.write(uint64(w-1), 14)
	bw.write(uint64(h-1), 14)
	bw.write(1, 1) // alpha is used
	bw.write(0, 3) // version
	bw.write(0, 1) // no transform
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	var codes [][]uint8
	for _, g := range get {
		vals := channel(g)
		codes = append(codes, vals)
		bw.write(1, 1) // simple code
		bw.write(uint64(len(vals)-1), 1)
		bw.write(1, 1) // first symbol has 8 bits
		for _, v := range vals {
			bw.write(uint64(v), 8)
		}
	}
	bw.write(1, 1) // distance code: simple, one 1-bit symbol 0
	bw.write(0, 1)
	bw.write(0, 1)
	bw.write(0, 1)
	for _, p := range pix {
		for ci, g := range get {
			if vals := codes[ci]; len(vals) == 2 {
				bit := uint64(0)
				if g(p) == vals[1] {
					bit = 1
				}
				bw.write(bit, 1)
			}
		}
	}
	return riff(chunk("VP8L", bw.bytes()))
}

// vp8Frame is a lossy key frame of w×h with all-zero partitions (see above).
func vp8Frame(w, h int) []byte {
	const firstPart = 512
	tag := uint32(0) | 0<<1 | 1<<4 | firstPart<<5 // key frame, version 0, shown
	f := []byte{byte(tag), byte(tag >> 8), byte(tag >> 16), 0x9d, 0x01, 0x2a}
	f = binary.LittleEndian.AppendUint16(f, uint16(w))
	f = binary.LittleEndian.AppendUint16(f, uint16(h))
	return append(f, make([]byte, firstPart+512)...)
}

// vp8Bytes is a lossy WebP; with alpha, a VP8X file with an uncompressed ALPH plane alpha(x, y).
func vp8Bytes(w, h int, alpha func(x, y int) uint8) []byte {
	if alpha == nil {
		return riff(chunk("VP8 ", vp8Frame(w, h)))
	}
	x := []byte{0x10, 0, 0, 0} // flags: alpha
	x = append(x, byte(w-1), byte((w-1)>>8), byte((w-1)>>16), byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	a := []byte{0} // no preprocessing, no filtering, no compression
	for yy := 0; yy < h; yy++ {
		for xx := 0; xx < w; xx++ {
			a = append(a, alpha(xx, yy))
		}
	}
	return riff(chunk("VP8X", x), chunk("ALPH", a), chunk("VP8 ", vp8Frame(w, h)))
}

func checkerboard(w, h int, a, b color.NRGBA) []color.NRGBA {
	pix := make([]color.NRGBA, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if (x+y)%2 == 0 {
				pix[y*w+x] = a
			} else {
				pix[y*w+x] = b
			}
		}
	}
	return pix
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
