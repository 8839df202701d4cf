package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rawFile assembles a safetensors file from a header string and data bytes, without validation.
func rawFile(t *testing.T, header string, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	path := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRoundTripKeepsValues(t *testing.T) {
	vals := []float32{0, 1, -2.5, 3.14159, 65504, 1e-7, -0.0, float32(math.Inf(1))}
	f16, err := FromFloat32As("b.half", F16, []int{2, 4}, vals)
	if err != nil {
		t.Fatal(err)
	}
	bf16, err := FromFloat32As("c.bf16", BF16, []int{8}, vals)
	if err != nil {
		t.Fatal(err)
	}
	tensors := []*Tensor{
		FromFloat32("a.f32", []int{2, 4}, vals),
		f16,
		bf16,
		FromInt64("d.i64", []int{3}, []int64{-1, 0, math.MaxInt64}),
		FromFloat32("e.scalar", []int{}, []float32{42}),
		FromFloat32("f.empty", []int{0, 3}, nil),
	}
	path := filepath.Join(t.TempDir(), "rt.safetensors")
	meta := map[string]string{"format": "pt", "note": "<&>"}
	if err := WriteFile(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.f32", "b.half", "c.bf16", "d.i64", "e.scalar", "f.empty"}; !slices.Equal(f.Names(), want) {
		t.Fatalf("names %v, want %v", f.Names(), want)
	}
	if f.Metadata["note"] != "<&>" || f.Metadata["format"] != "pt" {
		t.Errorf("metadata %v", f.Metadata)
	}
	for _, orig := range tensors {
		got := f.Tensors[orig.Name]
		if got.DType != orig.DType || !slices.Equal(got.Shape, orig.Shape) || !bytes.Equal(got.Data, orig.Data) {
			t.Errorf("%s: got %s %v %d bytes, want %s %v %d bytes", orig.Name, got.DType, got.Shape, len(got.Data), orig.DType, orig.Shape, len(orig.Data))
		}
	}
	got, _ := f.Tensors["a.f32"].Float32()
	if !slices.Equal(got, vals) {
		t.Errorf("f32 %v, want %v", got, vals)
	}
	// F16 and BF16 round: compare against the conversions of the stored bits.
	half, _ := f.Tensors["b.half"].Float32()
	wantHalf := []float32{0, 1, -2.5, 3.140625, 65504, 1.1920929e-07, 0, float32(math.Inf(1))}
	if !slices.Equal(half, wantHalf) {
		t.Errorf("f16 %v, want %v", half, wantHalf)
	}
	bf, _ := f.Tensors["c.bf16"].Float32()
	wantBF := []float32{0, 1, -2.5, 3.140625, 65536, 1.0011718e-07, 0, float32(math.Inf(1))}
	if !slices.Equal(bf, wantBF) {
		t.Errorf("bf16 %v, want %v", bf, wantBF)
	}
	ints, _ := f.Tensors["d.i64"].Int64()
	if !slices.Equal(ints, []int64{-1, 0, math.MaxInt64}) {
		t.Errorf("i64 %v", ints)
	}
	if _, err := f.Tensors["a.f32"].Int64(); err == nil {
		t.Error("Int64 of an F32 tensor should fail")
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d files after WriteFile, want 1", len(entries))
	}
}

func TestIntegerDTypesConvert(t *testing.T) {
	cases := []struct {
		dtype DType
		data  []byte
		want  []int64
	}{
		{I32, []byte{0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0}, []int64{-1, 2}},
		{I16, []byte{0xfe, 0xff, 3, 0}, []int64{-2, 3}},
		{I8, []byte{0x80, 5}, []int64{-128, 5}},
		{U8, []byte{0x80, 5}, []int64{128, 5}},
		{Bool, []byte{1, 0}, []int64{1, 0}},
	}
	for _, c := range cases {
		tensor := &Tensor{Name: "x", DType: c.dtype, Shape: []int{2}, Data: c.data}
		got, err := tensor.Int64()
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: Int64 = %v, %v; want %v", c.dtype, got, err, c.want)
		}
		f, err := tensor.Float32()
		if err != nil || f[0] != float32(c.want[0]) || f[1] != float32(c.want[1]) {
			t.Errorf("%s: Float32 = %v, %v", c.dtype, f, err)
		}
	}
	f64 := &Tensor{Name: "x", DType: F64, Shape: []int{1}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1))}
	if f, err := f64.Float32(); err != nil || f[0] != float32(0.1) {
		t.Errorf("F64: %v %v", f, err)
	}
	short := &Tensor{Name: "short", DType: F32, Shape: []int{3}, Data: make([]byte, 8)}
	if _, err := short.Float32(); err == nil || !strings.Contains(err.Error(), "short") {
		t.Errorf("short data: err = %v", err)
	}
}

func TestReadFixtureAndRewriteSameBytes(t *testing.T) {
	path := fixture(t, "tiny-sd", "unet", "diffusion_pytorch_model.safetensors")
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) == 0 || f.Metadata["format"] != "pt" {
		t.Fatalf("%s: %d tensors, metadata %v", path, len(f.Tensors), f.Metadata)
	}
	w := f.Tensors["conv_in.weight"]
	if w == nil || w.DType != F32 || len(w.Shape) != 4 {
		t.Fatalf("conv_in.weight = %+v", w)
	}
	if v, err := w.Float32(); err != nil || len(v) != w.NumElements() {
		t.Fatalf("conv_in.weight Float32: %d values, %v", len(v), err)
	}
	// The writer reproduces the upstream layout byte for byte (header order, padding, metadata).
	for _, p := range []string{path, fixture(t, "tiny-sd-golden.safetensors")} {
		f, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var tensors []*Tensor
		for _, name := range f.Names() {
			tensors = append(tensors, f.Tensors[name])
		}
		out := filepath.Join(t.TempDir(), "copy.safetensors")
		if err := WriteFile(out, tensors, f.Metadata); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(p)
		b, _ := os.ReadFile(out)
		if !bytes.Equal(a, b) {
			t.Errorf("rewriting %s changed its bytes (%d vs %d)", p, len(a), len(b))
		}
	}
}

// fixture locates a file under the golden fixture folder ($GOLCM_GOLDEN_DIR or ../shared/fixtures
// beside the repository root) and skips when it is absent. It cannot use internal/golden, which
// imports this package.
func fixture(t *testing.T, elem ...string) string {
	t.Helper()
	dir := os.Getenv("GOLCM_GOLDEN_DIR")
	if dir == "" {
		dir = "../shared/fixtures"
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("../..", dir) // relative to the repository root, two levels up
	}
	path := filepath.Join(append([]string{dir}, elem...)...)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("fixture %s not found (set GOLCM_GOLDEN_DIR): %v", path, err)
	}
	return path
}

func TestShardedCheckpointMerges(t *testing.T) {
	dir := t.TempDir()
	a := FromFloat32("a", []int{2}, []float32{1, 2})
	b := FromInt64("b", []int{1}, []int64{7})
	c := FromFloat32("c", []int{}, []float32{3})
	if err := WriteFile(filepath.Join(dir, "m-00001-of-00002.safetensors"), []*Tensor{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "m-00002-of-00002.safetensors"), []*Tensor{c}, nil); err != nil {
		t.Fatal(err)
	}
	writeIndex := func(wm map[string]string) string {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 16}, "weight_map": wm})
		p := filepath.Join(dir, "m.safetensors.index.json")
		os.WriteFile(p, b, 0o644)
		return p
	}
	good := map[string]string{"a": "m-00001-of-00002.safetensors", "b": "m-00001-of-00002.safetensors", "c": "m-00002-of-00002.safetensors"}
	f, err := ReadCheckpoint(writeIndex(good))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Names(), []string{"a", "b", "c"}) || f.Metadata["total_size"] != "16" {
		t.Errorf("names %v metadata %v", f.Names(), f.Metadata)
	}
	if v, _ := f.Tensors["c"].Float32(); len(v) != 1 || v[0] != 3 {
		t.Errorf("c = %v", v)
	}

	bad := []struct {
		name string
		wm   map[string]string
		want string
	}{
		{"wrong shard", map[string]string{"a": "m-00002-of-00002.safetensors", "b": "m-00001-of-00002.safetensors", "c": "m-00002-of-00002.safetensors"}, `tensor "a"`},
		{"unlisted tensor", map[string]string{"a": "m-00001-of-00002.safetensors", "c": "m-00002-of-00002.safetensors"}, `holds tensor "b"`},
		{"missing shard", map[string]string{"a": "nope.safetensors"}, "nope.safetensors"},
		{"escaping shard", map[string]string{"a": "../m-00001-of-00002.safetensors"}, "same folder"},
		{"empty", map[string]string{}, "weight_map"},
	}
	// walk reads the checkpoint with WalkCheckpoint, which must check it
	// as ReadCheckpoint does.
	walk := func(path string) (map[string][]byte, error) {
		got := map[string][]byte{}
		err := WalkCheckpoint(path, func(e HeaderEntry, r io.Reader) error {
			data, err := io.ReadAll(r)
			got[e.Name] = data
			return err
		})
		return got, err
	}
	walked, err := walk(writeIndex(good))
	if err != nil {
		t.Fatal(err)
	}
	for name, tensor := range f.Tensors {
		if !bytes.Equal(walked[name], tensor.Data) {
			t.Errorf("WalkCheckpoint: %s is % x, ReadCheckpoint read % x", name, walked[name], tensor.Data)
		}
	}
	if len(walked) != len(f.Tensors) {
		t.Errorf("WalkCheckpoint visited %d tensors, want %d", len(walked), len(f.Tensors))
	}
	for _, c := range bad {
		_, err := ReadCheckpoint(writeIndex(c.wm))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "m.safetensors.index.json") {
			t.Errorf("%s: err = %v, want it to mention %q and the index", c.name, err, c.want)
		}
		_, err = walk(writeIndex(c.wm))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "m.safetensors.index.json") {
			t.Errorf("%s: WalkCheckpoint err = %v, want it to mention %q and the index", c.name, err, c.want)
		}
	}
	// A plain file goes through ReadCheckpoint too.
	if f, err := ReadCheckpoint(filepath.Join(dir, "m-00002-of-00002.safetensors")); err != nil || len(f.Tensors) != 1 {
		t.Errorf("plain file: %v", err)
	}
}

func TestMalformedFilesGiveErrors(t *testing.T) {
	f32 := func(entries string) string { return "{" + entries + "}" }
	cases := []struct {
		name, header string
		dataSize     int
		want         string
	}{
		{"invalid json", `{"a":`, 0, "header JSON"},
		{"not an object", `[1,2]`, 0, "not a JSON object"},
		{"trailing garbage", `{} x`, 0, "trailing"},
		{"duplicate key", f32(`"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}`), 4, "duplicate"},
		{"unknown dtype", f32(`"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}`), 1, "unknown dtype"},
		{"missing shape", f32(`"a":{"dtype":"F32","data_offsets":[0,4]}`), 4, `missing "shape"`},
		{"wrong case key", f32(`"a":{"DTYPE":"F32","shape":[1],"data_offsets":[0,4]}`), 4, `missing "dtype"`},
		{"size mismatch", f32(`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}`), 4, "needs 8 bytes"},
		{"offsets out of range", f32(`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`), 4, "out of range"},
		{"reversed offsets", f32(`"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}`), 4, "out of range"},
		{"negative offset", f32(`"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}`), 4, "out of range"},
		{"three offsets", f32(`"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}`), 8, "want 2"},
		{"overlap", f32(`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}`), 8, "overlap"},
		{"negative dim", f32(`"a":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}`), 16, "bad dimension"},
		{"overflow", f32(`"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}`), 0, "more than 2^63"},
		{"fractional dim", f32(`"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}`), 4, `tensor "a"`},
		{"bad metadata", `{"__metadata__":{"k":1}}`, 0, "__metadata__"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := rawFile(t, c.header, make([]byte, c.dataSize))
			_, err := ReadFile(path)
			if err == nil {
				t.Fatalf("ReadFile accepted %s", c.header)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want it to mention %q and the file", err, c.want)
			}
		})
	}

	// Length prefix problems.
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	huge := binary.LittleEndian.AppendUint64(nil, 1<<62)
	beyond := append(binary.LittleEndian.AppendUint64(nil, 100), "{}"...)
	for _, c := range []struct{ path, want string }{
		{write("short", []byte{1, 2}), "too short"},
		{write("huge", huge), "over the"},
		{write("beyond", beyond), "beyond the file size"},
		{filepath.Join(dir, "absent.safetensors"), "absent.safetensors"},
	} {
		if _, err := ReadFile(c.path); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.path)) {
			t.Errorf("%s: err = %v, want %q", c.path, err, c.want)
		}
	}
}

func TestParseHeaderAcceptsEdgeCases(t *testing.T) {
	h, err := ParseHeader([]byte(`{"z":{"dtype":"F32","shape":[0,1000000000000],"data_offsets":[8,8]},`+
		`"a":{"dtype":"BF16","shape":[],"data_offsets":[10,12]},"__metadata__":null}  `), 12)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Entries) != 2 || h.Entries[0].Name != "a" || h.Entries[1].Shape[1] != 1000000000000 || h.Metadata != nil {
		t.Errorf("header %+v", h)
	}
}

func TestWriteFileRejectsBadTensors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.safetensors")
	cases := map[string][]*Tensor{
		"shape mismatch": {FromFloat32("a", []int{3}, []float32{1, 2})},
		"duplicate":      {FromFloat32("a", nil, []float32{1}), FromFloat32("a", nil, []float32{1})},
		"reserved name":  {FromFloat32("__metadata__", nil, []float32{1})},
	}
	for name, tensors := range cases {
		if err := WriteFile(path, tensors, nil); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left %d files", len(entries))
	}
	if _, err := FromFloat32As("x", I64, nil, nil); err == nil {
		t.Error("FromFloat32As(I64) should fail")
	}
}

func TestFloat16ConversionIsExactAndRoundsToEven(t *testing.T) {
	// Every finite binary16 value survives the round trip; NaNs stay NaN.
	for h := 0; h < 1<<16; h++ {
		f := Float16ToFloat32(uint16(h))
		back := Float32ToFloat16(f)
		if f != f {
			if Float16ToFloat32(back) == Float16ToFloat32(back) {
				t.Fatalf("NaN %#04x became %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
	// Narrowing picks the nearest binary16 value, ties to the even one, for values around every
	// exponent including subnormals and overflow.
	for h := 0; h < 0x7c00; h += 7 {
		lo, hi := float64(Float16ToFloat32(uint16(h))), float64(Float16ToFloat32(uint16(h+1)))
		if h+1 == 0x7c00 {
			hi = 65520 // the rounding boundary to Inf
		}
		for _, frac := range []float64{0.25, 0.5, 0.75} {
			x := float32(lo + frac*(hi-lo))
			got := Float32ToFloat16(x)
			want := uint16(h)
			if frac > 0.5 || (frac == 0.5 && h%2 == 1) {
				want = uint16(h + 1)
			}
			if got != want {
				t.Fatalf("%g (between %#04x and %#04x): got %#04x, want %#04x", x, h, h+1, got, want)
			}
		}
	}
	if got := Float32ToFloat16(1e-9); got != 0 {
		t.Errorf("1e-9 -> %#04x, want 0", got)
	}
	if got := Float32ToFloat16(-1e6); got != 0xfc00 {
		t.Errorf("-1e6 -> %#04x, want -Inf", got)
	}
}

func TestBFloat16ConversionRoundsToEven(t *testing.T) {
	cases := []struct {
		bits uint32
		want uint16
	}{
		{0x3f800000, 0x3f80},
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81},
		{0x7f7fffff, 0x7f80}, // rounds to Inf
		{0xff800000, 0xff80},
	}
	for _, c := range cases {
		if got := Float32ToBFloat16(math.Float32frombits(c.bits)); got != c.want {
			t.Errorf("%#08x -> %#04x, want %#04x", c.bits, got, c.want)
		}
	}
	if v := BFloat16ToFloat32(Float32ToBFloat16(float32(math.NaN()))); v == v {
		t.Error("NaN did not stay NaN")
	}
}
