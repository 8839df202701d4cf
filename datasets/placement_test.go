package datasets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
)

// placementLines is everything but the pixels of every sample, with its batch's size.
func placementLines(bs []*Batch) []string {
	var out []string
	for i, b := range bs {
		for _, s := range b.Samples {
			out = append(out, fmt.Sprintf("batch %d %dx%d: %s=%s orig %dx%d crop (%d,%d) flip %v %s", i, b.Width, b.Height,
				s.Key, s.Caption, s.OriginalH, s.OriginalW, s.CropTop, s.CropLeft, s.Flipped, s.Kind))
		}
	}
	return out
}

// NewPlacementsAt gives every sample the bucket, crop, flip and caption the pixel loader gives it, in
// the same batches, with the same Positions and counts, decoding nothing; and it resumes from them.
func TestPlacementsMatchPixels(t *testing.T) {
	cfgs := shuffledConfigs(t)
	bucketed := cfgs["webdataset"]
	bucketed.Buckets, bucketed.Resolution = []string{"8x8", "12x6", "6x12"}, 8
	cfgs["webdataset-buckets"] = bucketed
	for name, cfg := range cfgs {
		px := mustLoader(t, cfg)
		pl, err := NewPlacementsAt(cfg, Position{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var pxBatches, plBatches []*Batch
		var pxPos, plPos []Position
		for {
			a, errA := px.Next(context.Background())
			b, errB := pl.Next(context.Background())
			if errors.Is(errA, io.EOF) && errors.Is(errB, io.EOF) {
				break
			}
			if errA != nil || errB != nil {
				t.Fatalf("%s: pixels %v, placements %v", name, errA, errB)
			}
			if b.Pixels != nil || b.Samples[0].Pixels != nil {
				t.Fatalf("%s: the placement loader made pixels", name)
			}
			pxBatches, plBatches = append(pxBatches, a), append(plBatches, b)
			pxPos, plPos = append(pxPos, px.Position()), append(plPos, pl.Position())
		}
		pl.Close()
		if got, want := placementLines(plBatches), placementLines(pxBatches); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: placements\n %q\npixels\n %q", name, got, want)
		}
		if !reflect.DeepEqual(plPos, pxPos) || !reflect.DeepEqual(pl.Stats().Drops, px.Stats().Drops) {
			t.Errorf("%s: positions or counts differ: %v / %v", name, pl.Stats(), px.Stats())
		}
		k := len(plPos) / 2
		r, err := NewPlacementsAt(cfg, plPos[k], nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := placementLines(collect(t, r)), placementLines(pxBatches[k+1:]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: placements resumed after batch %d:\n %q\nwant %q", name, k+1, got, want)
		}
		r.Close()
	}
}
