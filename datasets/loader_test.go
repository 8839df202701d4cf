package datasets

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// sampleLine is everything observable about a sample, its pixels hashed.
func sampleLine(s Sample) string {
	h := sha256.New()
	for _, v := range s.Pixels {
		fmt.Fprintf(h, "%v,", v)
	}
	return fmt.Sprintf("%s=%s orig %dx%d crop (%d,%d) flip %v px %x", s.Key, s.Caption, s.OriginalH, s.OriginalW,
		s.CropTop, s.CropLeft, s.Flipped, h.Sum(nil)[:6])
}

func batchLines(bs []*Batch) []string {
	var out []string
	for i, b := range bs {
		for _, s := range b.Samples {
			out = append(out, fmt.Sprintf("batch %d: %s", i, sampleLine(s)))
		}
	}
	return out
}

// shuffledConfigs are fixtures in the three formats, large enough for batches to end mid-shard with
// the shuffle buffer spanning shards, read with shuffling, random crops and flips on.
func shuffledConfigs(t *testing.T) map[string]Config {
	wds, _ := wdsFixture(t)
	pq := t.TempDir()
	for f := 0; f < 3; f++ {
		var rows []binaryRow
		for i := 0; i < 9; i++ {
			row := binaryRow{jpegBytes(t, 20+i, 16, i), str(fmt.Sprintf("q%d row %d", f, i))}
			if i%4 == 3 {
				row.Text = nil // missing_caption
			}
			rows = append(rows, row)
		}
		writeParquet(t, filepath.Join(pq, fmt.Sprintf("q%d.parquet", f)), rows)
	}
	folders := t.TempDir()
	for f := 0; f < 2; f++ {
		for i := 0; i < 10; i++ {
			base := filepath.Join(folders, fmt.Sprintf("f%d", f), fmt.Sprintf("img%02d", i))
			writeFile(t, base+".jpg", jpegBytes(t, 16, 20+i, i))
			if i%5 != 4 {
				writeFile(t, base+".txt", []byte(fmt.Sprintf("folder %d image %d", f, i)))
			}
		}
	}
	base := Config{Resolution: 8, RandomFlip: true, ShuffleBuffer: 5, BatchSize: 2, Workers: 2, Seed: 42, Epochs: 3}
	cfgs := map[string]Config{}
	c := base
	c.Sources = []string{filepath.Join(wds, "{a,b,c,d,e}.tar")}
	cfgs["webdataset"] = c
	c = base
	c.Sources = []string{filepath.Join(pq, "q*.parquet")}
	cfgs["parquet"] = c
	c = base
	c.Sources = []string{filepath.Join(folders, "f0"), filepath.Join(folders, "f1")}
	cfgs["imagefolder"] = c
	return cfgs
}

func TestSameSeedSameStream(t *testing.T) {
	for name, cfg := range shuffledConfigs(t) {
		first := batchLines(collect(t, mustLoader(t, cfg)))
		again := batchLines(collect(t, mustLoader(t, cfg)))
		if !reflect.DeepEqual(first, again) {
			t.Errorf("%s: two runs with seed %d differ", name, cfg.Seed)
		}
		cfg.Workers = 1
		if one := batchLines(collect(t, mustLoader(t, cfg))); !reflect.DeepEqual(first, one) {
			t.Errorf("%s: 1 worker and 2 workers give different streams", name)
		}
		cfg.Seed = 7
		if other := batchLines(collect(t, mustLoader(t, cfg))); reflect.DeepEqual(first, other) {
			t.Errorf("%s: seeds 42 and 7 give the same stream", name)
		}
	}
}

// Shuffling reorders, within and across shards, but each epoch still delivers every usable sample once.
func TestShuffleDeliversEverySampleOncePerEpoch(t *testing.T) {
	dir, _ := wdsFixture(t)
	cfg := wdsConfig(dir, filepath.Join(dir, "{a,b,c,d,e}.tar"))
	cfg.ShuffleBuffer, cfg.Seed = 4, 3
	got := keysAndCaptions(collect(t, mustLoader(t, cfg)))
	if reflect.DeepEqual(got, wdsWantSamples) {
		t.Error("shuffled stream is in source order")
	}
	sort.Strings(got)
	want := append([]string(nil), wdsWantSamples...)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shuffled epoch %q, want the samples %q", got, want)
	}
}

// A run resumed from the Position saved after any batch continues with exactly the batches, and ends
// with exactly the counts, of the uninterrupted run: across shard and epoch boundaries, with the
// shuffle buffer spanning shards, and with drops on the way.
func TestResumeKeepsDataOrder(t *testing.T) {
	for name, cfg := range shuffledConfigs(t) {
		if full, _, _ := checkResumes(t, name, cfg); len(full) < 6 {
			t.Fatalf("%s: only %d batches; the fixture is too small to test resuming", name, len(full))
		}
	}
}

// checkResumes reads cfg's stream to its end, then resumes from the Position saved after every
// batch (through JSON) and checks the rest of the stream and the final counts; it returns the
// batches, the Positions (before the first batch and after each) and the final counts.
func checkResumes(t *testing.T, name string, cfg Config) ([]*Batch, []Position, Stats) {
	t.Helper()
	l := mustLoader(t, cfg)
	var full []*Batch
	positions := []Position{l.Position()}
	for {
		b, err := l.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		full = append(full, b)
		positions = append(positions, l.Position())
	}
	final := l.Stats()
	for k, pos := range positions {
		js, err := json.Marshal(pos)
		if err != nil {
			t.Fatal(err)
		}
		var saved Position
		if err := json.Unmarshal(js, &saved); err != nil {
			t.Fatal(err)
		}
		r, err := NewAt(cfg, saved)
		if err != nil {
			t.Fatalf("%s: NewAt(%s): %v", name, pos, err)
		}
		if got, want := batchLines(collect(t, r)), batchLines(full[k:]); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: resumed after batch %d (%s):\n got %q\nwant %q", name, k, pos, got, want)
		}
		s := r.Stats()
		if s.Read != final.Read || s.Delivered != final.Delivered || s.Batches != final.Batches ||
			!reflect.DeepEqual(s.Drops, final.Drops) || !reflect.DeepEqual(s.Kinds, final.Kinds) || s.Shards != final.Shards {
			t.Errorf("%s: resumed after batch %d ends with %s, uninterrupted with %s", name, k, s, final)
		}
		r.Close()
	}
	return full, positions, final
}

func TestNewAtRefusesAnotherSetup(t *testing.T) {
	cfg := shuffledConfigs(t)["webdataset"]
	l := mustLoader(t, cfg)
	l.Next(context.Background())
	pos := l.Position()
	cfg.Seed++
	if _, err := NewAt(cfg, pos); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("NewAt with another seed: %v, want a fingerprint error", err)
	}
}

func TestStopsWhenNothingUsable(t *testing.T) {
	dir := t.TempDir()
	var noCaptions, broken []member
	for i := 0; i < 40; i++ {
		noCaptions = append(noCaptions, m(fmt.Sprintf("n%02d.jpg", i), "x"))
		broken = append(broken, m(fmt.Sprintf("b%02d.jpg", i), "not a jpeg"), m(fmt.Sprintf("b%02d.txt", i), "c"))
	}
	writeTar(t, filepath.Join(dir, "nocaptions.tar"), 0, noCaptions...)
	writeTar(t, filepath.Join(dir, "broken.tar"), 0, broken...)
	for _, tc := range []struct {
		source, want string
	}{
		{"nocaptions.tar", "missing_caption 10"},
		{"broken.tar", "undecodable_image 10"},
		{"{gone1,gone2}.tar", "missing_file 2"},
		{"{gone1,nocaptions}.tar", "missing_caption 10"},
	} {
		cfg := Config{Sources: []string{filepath.Join(dir, tc.source)}, Resolution: 16, MaxConsecutiveDrops: 10, Workers: 2}
		l := mustLoader(t, cfg)
		_, err := l.Next(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one showing %q", tc.source, err, tc.want)
		}
		if _, again := l.Next(context.Background()); again == nil || again.Error() != err.Error() {
			t.Errorf("%s: Next after the failure gave %v", tc.source, again)
		}
	}
	if _, err := New(Config{Sources: []string{filepath.Join(dir, "nocaptions.tar")}, BatchSize: -1}); err == nil {
		t.Error("New accepted batch size -1")
	}
}

func TestEpochsEndWithEOFAndPartialBatch(t *testing.T) {
	dir, _ := wdsFixture(t)
	cfg := wdsConfig(dir, filepath.Join(dir, "{a,b,c,d,e}.tar"))
	cfg.BatchSize = 3 // 8 samples: two batches and 2 left over
	l := mustLoader(t, cfg)
	batches := collect(t, l)
	if len(batches) != 2 || l.Stats().Drops["partial_batch"] != 2 {
		t.Errorf("%d batches, partial_batch %d; want 2 and 2", len(batches), l.Stats().Drops["partial_batch"])
	}
	if _, err := l.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Errorf("Next after the end: %v, want io.EOF", err)
	}
}

func TestBatchLayout(t *testing.T) {
	dir, _ := wdsFixture(t)
	cfg := wdsConfig(dir, filepath.Join(dir, "a.tar"))
	cfg.BatchSize, cfg.Resolution = 2, 24
	l := mustLoader(t, cfg)
	b, err := l.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 3 * 24 * 24
	if len(b.Pixels) != 2*n || b.Height != 24 || b.Width != 24 || len(b.Captions) != 2 || b.Captions[1] != "one" {
		t.Fatalf("batch: %d pixels %dx%d captions %q", len(b.Pixels), b.Height, b.Width, b.Captions)
	}
	if &b.Samples[1].Pixels[0] != &b.Pixels[n] {
		t.Error("Samples[1].Pixels is not the second slice of Batch.Pixels")
	}
	lo, hi := float32(1), float32(-1)
	for _, v := range b.Pixels {
		lo, hi = min(lo, v), max(hi, v)
	}
	if lo < -1 || hi > 1 || hi-lo < 1 {
		t.Errorf("pixels span [%v, %v], want a good part of [-1, 1]", lo, hi)
	}
	// s00 40x30 → 32x24, centre crop left 4; s01 24x36 → 24x36, top 6.
	want := []float32{30, 40, 0, 4, 24, 24, 36, 24, 6, 0, 24, 24}
	if got := b.TimeIDs(); !reflect.DeepEqual(got, want) {
		t.Errorf("TimeIDs %v, want %v", got, want)
	}
}
