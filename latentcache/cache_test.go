package latentcache

import (
	"os"
	"path/filepath"
	"reflect"
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
