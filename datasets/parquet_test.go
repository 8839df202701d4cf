package datasets

import (
	"image/color"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// Rows as a plain binary image column with a nullable string caption.
type binaryRow struct {
	Image []byte  `parquet:"image"`
	Text  *string `parquet:"text,optional"`
}

// Rows as Hugging Face datasets writes them: image struct {bytes, path}, caption a list of strings.
type hfImage struct {
	Bytes []byte `parquet:"bytes,optional"`
	Path  string `parquet:"path,optional"`
}

type hfRow struct {
	Image    *hfImage `parquet:"image,optional"`
	Captions []string `parquet:"captions,list"`
	Extra    int64    `parquet:"extra"`
}

func writeParquet[T any](t testing.TB, path string, rows []T) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f, parquet.MaxRowsPerRowGroup(2)) // several row groups per file
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func str(s string) *string { return &s }

// parquetFixture writes p1.parquet (binary column) and p2.parquet (struct column, list captions).
func parquetFixture(t testing.TB) string {
	dir := t.TempDir()
	jpg := func(seed int) []byte { return jpegBytes(t, 40, 30, seed) }
	writeParquet(t, filepath.Join(dir, "p1.parquet"), []binaryRow{
		{jpg(0), str("p one")},
		{[]byte("corrupt"), str("p corrupt")}, // undecodable_image
		{jpg(2), nil},                         // missing_caption
		{nil, str("no image")},                // missing_image
		{pngBytes(t, testImage(30, 30, 4)), str("p four")},
	})
	writeParquet(t, filepath.Join(dir, "p2.parquet"), []hfRow{
		{&hfImage{jpg(5), "x0.jpg"}, []string{"only"}, 1},
		{&hfImage{Bytes: jpg(6)}, []string{"first", "second", "third"}, 2},
		{nil, []string{"null image"}, 3},  // missing_image
		{&hfImage{Bytes: jpg(7)}, nil, 4}, // missing_caption
		{&hfImage{Bytes: vp8lBytes(8, 8, checkerboard(8, 8, color.NRGBA{1, 2, 3, 255}, color.NRGBA{4, 5, 6, 255}))}, []string{"w"}, 5},
	})
	return dir
}

func TestParquetEverySampleAndDrop(t *testing.T) {
	dir := parquetFixture(t)
	cfg := Config{Sources: []string{filepath.Join(dir, "p1.parquet")}, Resolution: 16, Epochs: 1, Workers: 2, BatchSize: 1}
	l := mustLoader(t, cfg)
	if got, want := keysAndCaptions(collect(t, l)), []string{"p1.parquet/0=p one", "p1.parquet/4=p four"}; !reflect.DeepEqual(got, want) {
		t.Errorf("binary column: samples %q, want %q", got, want)
	}
	if got, want := l.Stats().Drops, map[string]int64{"undecodable_image": 1, "missing_caption": 1, "missing_image": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("binary column: drops %v, want %v", got, want)
	}

	cfg = Config{Sources: []string{filepath.Join(dir, "p2.parquet")}, CaptionColumn: "captions", Resolution: 16, Epochs: 6, BatchSize: 1}
	l = mustLoader(t, cfg)
	batches := collect(t, l)
	seen := map[string]bool{}
	for i, kc := range keysAndCaptions(batches) {
		want := []string{"p2.parquet/0=only", "p2.parquet/1=", "p2.parquet/4=w"}[i%3]
		if !strings.HasPrefix(kc, want) {
			t.Fatalf("struct column: sample %d is %q, want %q…", i, kc, want)
		}
		if i%3 == 1 {
			seen[strings.TrimPrefix(kc, want)] = true
		}
	}
	if len(batches) != 18 || len(seen) < 2 {
		t.Errorf("struct column: %d samples over 6 epochs, list captions chosen %v; want 18 and a varying choice", len(batches), seen)
	}
	for c := range seen {
		if c != "first" && c != "second" && c != "third" {
			t.Errorf("caption %q is not one of the list", c)
		}
	}
	if got, want := l.Stats().Drops, map[string]int64{"missing_caption": 6, "missing_image": 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("struct column: drops %v, want %v", got, want)
	}
	if got := l.Stats().Kinds; got["jpeg"] != 12 || got["webp"] != 6 {
		t.Errorf("kinds %v, want jpeg 12 webp 6", got)
	}
}

func TestParquetBadFilesAreCounted(t *testing.T) {
	dir := parquetFixture(t)
	writeFile(t, filepath.Join(dir, "junk.parquet"), []byte("this is not parquet"))
	writeParquet(t, filepath.Join(dir, "nocaption.parquet"), []struct {
		Image []byte `parquet:"image"`
	}{{jpegBytes(t, 40, 30, 0)}})
	cfg := Config{Sources: []string{filepath.Join(dir, "{p1,junk,nocaption,gone}.parquet")}, Resolution: 16, Epochs: 1, BatchSize: 1}
	l := mustLoader(t, cfg)
	if got := len(collect(t, l)); got != 2 {
		t.Errorf("%d samples, want p1's 2", got)
	}
	drops := l.Stats().Drops
	if drops["read_error"] != 2 || drops["missing_file"] != 1 {
		t.Errorf("drops %v, want read_error 2 (junk, no caption column) and missing_file 1", drops)
	}
	if msg := l.Stats().LastErrors["read_error"]; !strings.Contains(msg, `"text"`) {
		t.Errorf("read_error message %q does not name the missing column", msg)
	}
}
