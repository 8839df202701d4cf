package latentcache

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func settings() Settings {
	return Settings{VAE: "v1", TextEncoders: []string{"t1", "t2"}, Data: "d", Resolution: 64,
		Buckets: []string{"64x64", "96x48"}, CenterCrop: true, RandomFlip: true, Interpolation: "bilinear"}
}

// entry is sample i with values that identify it: array name n, element j holds 1000·i + 100·n + j.
func entry(i int) Entry {
	arr := func(n int, shape ...int) Array {
		size := 1
		for _, d := range shape {
			size *= d
		}
		a := Array{Shape: shape, Data: make([]float32, size)}
		for j := range a.Data {
			a.Data[j] = float32(1000*i + 100*n + j)
		}
		return a
	}
	return Entry{Key: "shard.tar/" + string(rune('a'+i)), Arrays: map[string]Array{
		NameMean: arr(1, 4, 2, 3), NameLogVar: arr(2, 4, 2, 3), NameFlippedMean: arr(3, 4, 2, 3),
		NameFlippedLogVar: arr(4, 4, 2, 3), NamePromptEmbeds: arr(5, 7, 5), NamePooled: arr(6, 5),
		NameTimeIDs: arr(7, 6), NameFlippedTimeIDs: arr(8, 6),
	}}
}

// Every sample comes back with every array, bit for bit, across shards and in any order.
func TestCacheRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	w, err := Create(dir, settings(), 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		if err := w.Add(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Add(entry(2)); err == nil {
		t.Error("Add accepted a key twice")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "shard-*.safetensors"))
	if len(shards) != 3 {
		t.Errorf("%d shards for 7 samples at 3 per shard, want 3", len(shards))
	}
	c, err := Open(dir, settings())
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 7 {
		t.Errorf("Len %d, want 7", c.Len())
	}
	for _, i := range []int{6, 0, 4, 2, 5, 1, 3} {
		want := entry(i)
		got, err := c.Get(want.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("sample %d: got %v, want %v", i, got, want)
		}
	}
	if _, err := c.Get("shard.tar/zz"); err == nil || !strings.Contains(err.Error(), "zz") {
		t.Errorf("Get of an unknown key: %v", err)
	}
	if _, err := Create(dir, settings(), 3); err == nil {
		t.Error("Create over a finished cache succeeded")
	}
}

// A cache made with other settings is refused, naming each setting with both values; an unfinished
// one (no manifest) is refused as such.
func TestCacheRefusesOtherSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	w, err := Create(dir, settings(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(entry(0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	run := settings()
	run.Resolution, run.RandomFlip, run.TextEncoders = 128, false, []string{"t1", "t3"}
	_, err = Open(dir, run)
	for _, want := range []string{"data.resolution: cache 64, this run 128", "data.random_flip: cache true, this run false",
		"text_encoders: cache [t1 t2], this run [t1 t3]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open with other settings: %v, want it to say %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "vae:") {
		t.Errorf("Open names a setting that did not change: %v", err)
	}
	os.Remove(filepath.Join(dir, manifestName))
	if _, err := Open(dir, settings()); err == nil || !strings.Contains(err.Error(), "not a finished cache") {
		t.Errorf("Open without a manifest: %v", err)
	}
}

// A writer killed after some shards keeps them: Resume returns the After of the last sample saved
// and the samples already saved; the finished cache holds every sample once, with its captions, and
// no stray shard of the killed writer. Resume with other settings is refused by name.
func TestCacheResumesAfterAKill(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	after := func(i int) []byte { return []byte(strconv.Itoa(i)) }
	add := func(w *Writer, i int) {
		e := entry(i)
		e.Captions, e.After = []string{fmt.Sprintf("caption %d", i), "another"}, after(i)
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	w, err := Create(dir, settings(), 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // shards {0,1}, {2,3}; sample 4 is queued when the writer is "killed"
		add(w, i)
	}
	if err := w.AddUndecodable("broken", after(5)); err != nil {
		t.Fatal(err)
	}
	other := settings()
	other.CenterCrop = false
	if _, _, err := Resume(dir, other, 2); err == nil || !strings.Contains(err.Error(), "data.center_crop: cache true, this run false") {
		t.Errorf("Resume with other settings: %v", err)
	}
	w, at, err := Resume(dir, settings(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if string(at) != "3" || w.Len() != 4 {
		t.Fatalf("Resume: after %q with %d samples, want after \"3\" with 4", at, w.Len())
	}
	for i := 4; i < 7; i++ {
		add(w, i)
	}
	if err := w.Add(entry(1)); err == nil {
		t.Error("a resumed writer accepted a key saved before the kill")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, partialName)); !os.IsNotExist(err) {
		t.Errorf("partial.json left after Close: %v", err)
	}
	c, err := Open(dir, settings())
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 7 || c.Undecodable("broken") {
		t.Errorf("Len %d, want 7; undecodable %v, want false (it was queued behind the lost sample 4)", c.Len(), c.Undecodable("broken"))
	}
	for i := range 7 {
		got, err := c.Get(entry(i).Key)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{fmt.Sprintf("caption %d", i), "another"}; !reflect.DeepEqual(got.Captions, want) ||
			!reflect.DeepEqual(got.Arrays, entry(i).Arrays) {
			t.Errorf("sample %d: captions %q, want %q (or arrays differ)", i, got.Captions, want)
		}
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "shard-*.safetensors"))
	if len(shards) != 4 {
		t.Errorf("%d shard files, want 4 (7 samples at 2 per shard)", len(shards))
	}
}

// HashFiles depends on every byte of every file and on their order.
func TestHashFilesSeesContent(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("weights"), 0o644)
	os.WriteFile(b, []byte("config"), 0o644)
	h1, err := HashFiles(a, b)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashFiles(b, a)
	os.WriteFile(a, []byte("weightS"), 0o644)
	h3, _ := HashFiles(a, b)
	if h1 == h2 || h1 == h3 || len(h1) != 16 {
		t.Errorf("hashes %s %s %s: want 16 digits, differing with order and content", h1, h2, h3)
	}
}
