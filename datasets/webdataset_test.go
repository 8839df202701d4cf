package datasets

import (
	"fmt"
	"image/color"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// wdsFixture writes the WebDataset shards most tests read, and returns the directory and the
// members of the good shard. Expected outcome per sample is noted beside it.
func wdsFixture(t testing.TB) (string, []member) {
	dir := t.TempDir()
	jpg := func(seed int) []byte { return jpegBytes(t, 40, 30, seed) }
	good := []member{
		m("s00.jpg", jpg(0)), m("s00.txt", "a photo of zero\n"), // delivered, caption trimmed
		m("s01.PNG", pngBytes(t, testImage(24, 36, 1))), m("s01.Caption", "one"), // suffixes lower-cased
		m("s02.webp", vp8lBytes(20, 20, checkerboard(20, 20, color.NRGBA{200, 0, 0, 255}, color.NRGBA{0, 0, 200, 255}))), m("s02.text", "two"),
		m("s03.jpg", "garbage, not a jpeg"), m("s03.txt", "three"), // undecodable_image
		m("s04.jpg", jpg(4)), // missing_caption
		m("s05.txt", "five"), // missing_image
		m("s06.jpg", jpg(6)), m("s06.txt", "six"), m("s06.json", `{"original_width": 1024}`),
		m("dir/s07.jpg", jpg(7)), m("dir/s07.txt", "seven"), // key keeps the directory
		m("s08.txt", "eight"), m("s08.jpg", jpg(8)), m("s08.txt", "eight again"), // repeated suffix: new sample, missing_image
		m("s09.jpg", jpg(9)), m("s09.txt", "nine"), m("s09.cls", "3"), // extra member ignored
	}
	writeTar(t, filepath.Join(dir, "a.tar"), 0, good...)
	trunc := []member{m("t00.jpg", jpg(10)), m("t00.txt", "t zero"), m("t01.jpg", jpg(11)), m("t01.txt", "t one")}
	writeTar(t, filepath.Join(dir, "b.tar"), tarOffset(trunc, 2)+100, trunc...) // cut inside t01.jpg
	writeTar(t, filepath.Join(dir, "c.tar"), 0)                                 // a valid tar with no member
	writeFile(t, filepath.Join(dir, "e.tar"), nil)                              // zero bytes
	return dir, good
}

// wdsWant is what reading a.tar, b.tar, c.tar, d.tar (missing) and e.tar in order gives.
var (
	wdsWantSamples = []string{"s00=a photo of zero", "s01=one", "s02=two", "s06=six", "dir/s07=seven",
		"s08=eight", "s09=nine", "t00=t zero"}
	wdsWantDrops = map[string]int64{"undecodable_image": 1, "missing_caption": 1, "missing_image": 2,
		"truncated_sample": 1, "truncated_tar": 1, "empty_shard": 2, "missing_file": 1}
)

func wdsConfig(dir string, sources ...string) Config {
	return Config{Sources: sources, Resolution: 16, CenterCrop: true, Epochs: 1, Workers: 2, BatchSize: 1}
}

func TestWebDatasetEverySampleAndDrop(t *testing.T) {
	dir, _ := wdsFixture(t)
	l := mustLoader(t, wdsConfig(dir, filepath.Join(dir, "{a,b,c,d,e}.tar")))
	batches := collect(t, l)
	if got := keysAndCaptions(batches); !reflect.DeepEqual(got, wdsWantSamples) {
		t.Errorf("samples\n got %q\nwant %q", got, wdsWantSamples)
	}
	s := l.Stats()
	if !reflect.DeepEqual(s.Drops, wdsWantDrops) {
		t.Errorf("drops %v, want %v", s.Drops, wdsWantDrops)
	}
	wantKinds := map[string]int64{"jpeg": 6, "png": 1, "webp": 1}
	if s.Read != 13 || s.Delivered != 8 || s.Shards != 5 || !reflect.DeepEqual(s.Kinds, wantKinds) {
		t.Errorf("stats %+v, want read 13 delivered 8 shards 5 kinds %v", s, wantKinds)
	}
	for _, want := range []string{"undecodable_image", "missing_file", "truncated_tar"} {
		if !strings.Contains(s.String(), want) {
			t.Errorf("progress line %q lacks %s", s.String(), want)
		}
		if s.Metrics()["data/drop/"+want] == 0 {
			t.Errorf("metrics lack data/drop/%s", want)
		}
	}
	if !strings.Contains(s.LastErrors["missing_file"], "d.tar") {
		t.Errorf("last missing_file message %q does not name d.tar", s.LastErrors["missing_file"])
	}
	// SDXL micro-conditioning: s00 is 40x30, resized to 21x16, centre crop at left round(2.5) = 2.
	s00 := batches[0].Samples[0]
	if s00.OriginalH != 30 || s00.OriginalW != 40 || s00.CropTop != 0 || s00.CropLeft != 2 || s00.Kind != "jpeg" {
		t.Errorf("s00: original %dx%d crop (%d,%d) kind %s, want 30x40 (0,2) jpeg", s00.OriginalH, s00.OriginalW, s00.CropTop, s00.CropLeft, s00.Kind)
	}
	s01 := batches[1].Samples[0] // 24x36 portrait: resized 16x24, crop top round(4) = 4
	if s01.OriginalH != 36 || s01.OriginalW != 24 || s01.CropTop != 4 || s01.CropLeft != 0 {
		t.Errorf("s01: original %dx%d crop (%d,%d), want 36x24 (4,0)", s01.OriginalH, s01.OriginalW, s01.CropTop, s01.CropLeft)
	}
}

func TestWebDatasetMetadataFilters(t *testing.T) {
	dir := t.TempDir()
	img := jpegBytes(t, 40, 30, 0)
	writeTar(t, filepath.Join(dir, "f.tar"), 0,
		m("f0.jpg", img), m("f0.txt", "kept"), m("f0.json", `{"original_width": 1024, "original_height": 800, "pwatermark": 0.2}`),
		m("f1.jpg", img), m("f1.txt", "small"), m("f1.json", `{"original_width": 300, "original_height": 800, "pwatermark": 0.2}`),
		m("f2.jpg", img), m("f2.txt", "watermarked"), m("f2.json", `{"original_width": 1024, "original_height": 800, "pwatermark": 0.9}`),
		m("f3.jpg", img), m("f3.txt", "no json"),
		m("f4.jpg", img), m("f4.txt", "bad json"), m("f4.json", `{"original_width": 10`),
		m("f5.jpg", img), m("f5.txt", "no watermark field"), m("f5.json", `{"original_width": 1024, "original_height": 1024}`),
		m("f6.jpg", img), m("f6.txt", "no size"), m("f6.json", `{"pwatermark": 0.1}`),
		m("g0.jpg", img), m("g0.txt", "kept too"), m("g0.json", `{"original_width": 512, "original_height": 512, "pwatermark": 0.5}`),
	)
	cfg := wdsConfig(dir, filepath.Join(dir, "f.tar"))
	cfg.MinWidth, cfg.MinHeight, cfg.MaxWatermark = 512, 512, 0.5
	l := mustLoader(t, cfg)
	if got, want := keysAndCaptions(collect(t, l)), []string{"f0=kept", "g0=kept too"}; !reflect.DeepEqual(got, want) {
		t.Errorf("samples %q, want %q", got, want)
	}
	want := map[string]int64{"filtered_size": 2, "filtered_watermark": 2, "missing_metadata": 1, "bad_metadata": 1}
	if got := l.Stats().Drops; !reflect.DeepEqual(got, want) {
		t.Errorf("drops %v, want %v", got, want)
	}

	// Configurable field names.
	writeTar(t, filepath.Join(dir, "h.tar"), 0,
		m("h0.jpg", img), m("h0.txt", "ok"), m("h0.json", `{"w": 600, "h": 600, "wm": 0}`),
		m("h1.jpg", img), m("h1.txt", "narrow"), m("h1.json", `{"w": 100, "h": 600, "wm": 0}`))
	cfg = wdsConfig(dir, filepath.Join(dir, "h.tar"))
	cfg.MinWidth, cfg.WidthField, cfg.HeightField, cfg.WatermarkField, cfg.MaxWatermark = 512, "w", "h", "wm", 0.5
	l = mustLoader(t, cfg)
	if got := keysAndCaptions(collect(t, l)); !reflect.DeepEqual(got, []string{"h0=ok"}) {
		t.Errorf("custom fields: samples %q, want [h0=ok]", got)
	}
}

func TestWebDatasetPipeSources(t *testing.T) {
	dir, good := wdsFixture(t)
	a := filepath.Join(dir, "a.tar")
	cut := tarOffset(good, 3) + 2 // inside s01's caption
	for _, tc := range []struct {
		source  string
		samples int
		drops   map[string]int64
	}{
		{"pipe:cat " + a, 7, map[string]int64{"undecodable_image": 1, "missing_caption": 1, "missing_image": 2}},
		{"pipe:gzip -c " + a, 7, map[string]int64{"undecodable_image": 1, "missing_caption": 1, "missing_image": 2}},
		// The command streams a whole shard and then fails: its samples are kept, the shard counted.
		{"pipe:cat " + a + "; exit 3", 7, map[string]int64{"undecodable_image": 1, "missing_caption": 1, "missing_image": 2, "pipe_failed": 1}},
		// Cut short and failing: what came before is kept, the sample being read is dropped.
		{fmt.Sprintf("pipe:head -c %d %s; exit 1", cut, a), 1, map[string]int64{"pipe_failed": 1, "truncated_sample": 1}},
		// Cut short but exiting 0: a truncated tar.
		{fmt.Sprintf("pipe:head -c %d %s", cut, a), 1, map[string]int64{"truncated_tar": 1, "truncated_sample": 1}},
	} {
		l := mustLoader(t, wdsConfig(dir, tc.source))
		got := len(collect(t, l))
		drops := l.Stats().Drops
		if got != tc.samples || !reflect.DeepEqual(drops, tc.drops) {
			t.Errorf("%s: %d samples, drops %v; want %d, %v", tc.source, got, drops, tc.samples, tc.drops)
		}
	}
	// A command that does not exist yields nothing: the run stops with the counts.
	cfg := wdsConfig(dir, "pipe:no-such-command-golcm-test")
	l := mustLoader(t, cfg)
	_, err := l.Next(t.Context())
	if err == nil || !strings.Contains(err.Error(), "pipe_failed 1") {
		t.Errorf("failing pipe: error %v, want one that shows pipe_failed 1", err)
	}
}

func TestSplitKey(t *testing.T) {
	for name, want := range map[string]string{
		"a/b/c00.seg.JPG": "a/b/c00 seg.jpg", "x.txt": "x txt", "noext": "!", ".hidden": "!", "a.": "!",
		"dir.v1/s.png": "dir.v1/s png",
	} {
		k, s, ok := splitKey(name)
		got := fmt.Sprintf("%s %s", k, s)
		if !ok {
			got = "!"
		}
		if got != want {
			t.Errorf("splitKey(%q) = %q, want %q", name, got, want)
		}
	}
}
