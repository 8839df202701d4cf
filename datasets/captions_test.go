package datasets

import (
	"encoding/binary"
	"hash/crc32"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// hugePNG is a PNG whose header says w×h (the image data stays tiny): what a decompression bomb
// looks like before it is decoded.
func hugePNG(t *testing.T, w, h int) []byte {
	b := pngBytes(t, testImage(2, 2, 1))
	// The IHDR chunk follows the 8-byte signature: length, "IHDR", width, height, ..., CRC.
	binary.BigEndian.PutUint32(b[16:], uint32(w))
	binary.BigEndian.PutUint32(b[20:], uint32(h))
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

// TestTooLargeAndEmptyCaptions: a 14000×14000 PNG is counted too_large (not undecodable_image);
// empty and blank captions are kept and counted, or dropped as empty_caption with
// DropEmptyCaptions.
func TestTooLargeAndEmptyCaptions(t *testing.T) {
	dir := t.TempDir()
	shard := filepath.Join(dir, "s.tar")
	writeTar(t, shard, 0,
		m("big.png", hugePNG(t, 14000, 14000)), m("big.txt", "a huge image"),
		m("empty.jpg", jpegBytes(t, 8, 8, 1)), m("empty.txt", ""),
		m("blank.jpg", jpegBytes(t, 8, 8, 2)), m("blank.txt", "  \n"),
		m("ok.jpg", jpegBytes(t, 8, 8, 3)), m("ok.txt", "a cat"))
	for _, drop := range []bool{false, true} {
		cfg := Config{Sources: []string{shard}, Resolution: 8, BatchSize: 1, DropEmptyCaptions: drop}
		rep, err := Inspect(cfg, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		wantDrops := map[string]int64{"too_large": 1}
		wantDelivered, wantEmpty := int64(3), int64(2)
		if drop {
			wantDrops["empty_caption"] = 2
			wantDelivered, wantEmpty = 1, 0
		}
		if s := rep.Stats; !reflect.DeepEqual(s.Drops, wantDrops) || s.Delivered != wantDelivered || s.EmptyCaptions != wantEmpty {
			t.Errorf("DropEmptyCaptions=%v: drops %v, delivered %d, empty captions %d; want %v, %d, %d",
				drop, s.Drops, s.Delivered, s.EmptyCaptions, wantDrops, wantDelivered, wantEmpty)
		}
		if !drop && !strings.Contains(rep.Stats.String(), "empty captions 2") {
			t.Errorf("stats line %q does not count the empty captions", rep.Stats.String())
		}
	}
}

// TestMissingSourceIsNamed: a source folder that does not exist is named as missing rather than
// reported as a format question.
func TestMissingSourceIsNamed(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "no-such-folder")
	_, _, err := expandSources([]string{gone}, FormatAuto)
	if err == nil || !strings.Contains(err.Error(), "no such file or folder: "+gone) || strings.Contains(err.Error(), "Format") {
		t.Errorf("missing folder: %v, want it named as missing", err)
	}
}
