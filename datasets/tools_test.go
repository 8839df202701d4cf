package datasets

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestInspectCountsAndGrid(t *testing.T) {
	dir, _ := wdsFixture(t)
	grid := filepath.Join(t.TempDir(), "grid.png")
	cfg := Config{Sources: []string{filepath.Join(dir, "{a,b,c,d,e}.tar")}, Resolution: 32, ShuffleBuffer: 100, RandomFlip: true, BatchSize: 1}
	rep, err := Inspect(cfg, 0, grid)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range rep.Samples {
		keys = append(keys, s.Key+"="+s.Caption)
	}
	if !reflect.DeepEqual(keys, wdsWantSamples) { // in source order: Inspect does not shuffle
		t.Errorf("inspected %q, want %q", keys, wdsWantSamples)
	}
	if !reflect.DeepEqual(rep.Stats.Drops, wdsWantDrops) || rep.Stats.Kinds["jpeg"] != 6 || rep.Format != "webdataset" || rep.Shards != 5 {
		t.Errorf("report %+v", rep)
	}
	text := rep.String()
	for _, want := range []string{"jpeg                 6", "undecodable_image    1", "missing_file         1", `"a photo of zero"`, "grid: " + grid} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	f, err := os.Open(grid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// 8 samples: 3 columns × 3 rows of 32-pixel thumbnails with 4 caption lines under each.
	if b := img.Bounds(); b.Dx() != 3*36+4 || b.Dy() != 3*(32+4*13+8)+4 {
		t.Errorf("grid is %dx%d", b.Dx(), b.Dy())
	}

	rep, err = Inspect(cfg, 3, "")
	if err != nil || len(rep.Samples) != 3 || rep.Grid != "" {
		t.Errorf("Inspect(n=3): %d samples, grid %q, %v", len(rep.Samples), rep.Grid, err)
	}
}

// Converting an image folder and parquet files gives WebDataset shards that load to the same
// samples, pixel for pixel, as the originals.
func TestConvertToWebDataset(t *testing.T) {
	meta, txt := folderFixture(t)
	pq := parquetFixture(t)
	for _, tc := range []struct {
		name   string
		src    Config
		shards int
	}{
		{"imagefolder", Config{Sources: []string{meta, txt}, BatchSize: 1}, 3}, // 6 samples, 2 per shard
		{"parquet", Config{Sources: []string{filepath.Join(pq, "p2.parquet")}, CaptionColumn: "captions", BatchSize: 1}, 2},
	} {
		out := t.TempDir()
		tc.src.Resolution = 16
		stats, err := ConvertToWebDataset(tc.src, filepath.Join(out, "shard-%03d.tar"), 2)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		files, _ := filepath.Glob(filepath.Join(out, "*"))
		if len(files) != tc.shards {
			t.Errorf("%s: wrote %q, want %d shards", tc.name, files, tc.shards)
		}
		if stats.Dropped() == 0 {
			t.Errorf("%s: no drops counted; the fixture has some", tc.name)
		}
		orig := tc.src
		orig.Epochs, orig.CenterCrop = 1, true
		conv := Config{Sources: []string{filepath.Join(out, "shard-{000..009}.tar")}, Resolution: 16, Epochs: 1, CenterCrop: true, BatchSize: 1}
		want := collect(t, mustLoader(t, orig))
		l := mustLoader(t, conv)
		got := collect(t, l)
		if len(got) != len(want) || l.Stats().Drops["missing_file"] != int64(10-tc.shards) {
			t.Fatalf("%s: %d converted samples (drops %v), want %d", tc.name, len(got), l.Stats().Drops, len(want))
		}
		for i := range got {
			g, w := got[i].Samples[0], want[i].Samples[0]
			if !reflect.DeepEqual(g.Pixels, w.Pixels) || g.OriginalH != w.OriginalH || g.Kind != w.Kind ||
				(tc.name == "imagefolder" && !strings.HasPrefix(w.Caption, "meta b") && g.Caption != w.Caption) {
				t.Errorf("%s: sample %d: converted %s %q %dx%d, original %s %q %dx%d", tc.name, i, g.Kind, g.Caption, g.OriginalW, g.OriginalH, w.Kind, w.Caption, w.OriginalW, w.OriginalH)
			}
		}
	}
	// The json member keeps the original key and records the size for the filters.
	out := t.TempDir()
	if _, err := ConvertToWebDataset(Config{Sources: []string{meta}, BatchSize: 1}, filepath.Join(out, "%d.tar"), 10); err != nil {
		t.Fatal(err)
	}
	l := mustLoader(t, Config{Sources: []string{filepath.Join(out, "0.tar")}, Epochs: 1, Resolution: 8, MinWidth: 35, BatchSize: 1})
	if got := keysAndCaptions(collect(t, l)); len(got) != 2 { // a.jpg 40 wide, d.jpg 40 wide; b.png is 30
		t.Errorf("converted shard filtered by width: %q", got)
	}
	if _, err := ConvertToWebDataset(Config{Sources: []string{meta}, BatchSize: 1}, filepath.Join(out, "no-verb.tar"), 10); err == nil {
		t.Error("an output pattern without a verb was accepted")
	}
}

func TestConvertedJSONKeepsMetadata(t *testing.T) {
	meta, _ := folderFixture(t)
	out := t.TempDir()
	if _, err := ConvertToWebDataset(Config{Sources: []string{meta}, BatchSize: 1}, filepath.Join(out, "%d.tar"), 10); err != nil {
		t.Fatal(err)
	}
	var js []map[string]any
	_, err := streamTar(t.Context(), filepath.Join(out, "0.tar"), 0, 0, &Config{}, func(r *rawSample) bool {
		var m map[string]any
		if err := json.Unmarshal(r.meta, &m); err != nil {
			t.Fatal(err)
		}
		js = append(js, m)
		return true
	})
	if err != nil || len(js) != 3 {
		t.Fatalf("%d json members, %v", len(js), err)
	}
	if js[0]["key"] != "a.jpg" || js[0]["original_width"] != 40.0 || js[0]["text"] != "meta a" {
		t.Errorf("first json %v", js[0])
	}
	if c, _ := js[1]["captions"].([]any); len(c) != 2 {
		t.Errorf("second json %v, want both captions", js[1])
	}
}
