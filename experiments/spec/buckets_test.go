package spec

import (
	"testing"

	"github.com/golcm/golcm/datasets"
)

func TestBucketKeys(t *testing.T) {
	wantContains(t, parseErr(t, "[data]\nbuckets = [\"64x60\"]\n"), `bucket 64x60 has a side that is not a multiple of 8`)
	wantContains(t, parseErr(t, "[data]\nbuckets = [\"64by64\"]\n"), `data.buckets = ["64by64"]`, "WIDTHxHEIGHT")
	wantContains(t, parseErr(t, "[data]\nbuckets = [\"auto\"]\nbucket_step = 12\n"), "data.bucket_step = 12 is not a multiple of 8")
	// resolution 2048, step 8: far more than 32 generated buckets.
	wantContains(t, parseErr(t, "[data]\nresolution = 2048\nbuckets = [\"auto\"]\nbucket_step = 8\n"), "more than 32")
	s, err := Parse([]byte("[data]\nresolution = 1024\nbuckets = [\"auto\"]\n"), "x.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := s.Data.TrainingSizes()
	if want := datasets.GenerateBuckets(1024*1024, 64); err != nil || len(sizes) != len(want) || sizes[0] != want[0] {
		t.Errorf("auto at 1024: %v, %v; want %v", sizes, err, want)
	}
	s, err = Parse([]byte("[data]\nbuckets = [\"512x512\", \"576x448\"]\n"), "x.toml", nil)
	if err != nil || len(s.Data.Buckets) != 2 {
		t.Errorf("explicit buckets: %v, %v", s, err)
	}
}
