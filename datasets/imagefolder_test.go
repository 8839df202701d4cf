package datasets

import (
	"path/filepath"
	"reflect"
	"testing"
)

// folderFixture writes two image folders: "meta" with a metadata.jsonl, "txt" with captions in .txt
// files beside the images.
func folderFixture(t testing.TB) (meta, txt string) {
	dir := t.TempDir()
	meta, txt = filepath.Join(dir, "meta"), filepath.Join(dir, "txt")
	jpg := func(seed int) []byte { return jpegBytes(t, 40, 30, seed) }
	writeFile(t, filepath.Join(meta, "a.jpg"), jpg(0))
	writeFile(t, filepath.Join(meta, "sub", "b.png"), pngBytes(t, testImage(30, 40, 1)))
	writeFile(t, filepath.Join(meta, "c.jpg"), []byte("broken"))
	writeFile(t, filepath.Join(meta, "d.jpg"), jpg(3))
	writeFile(t, filepath.Join(meta, "unlisted.jpg"), jpg(4)) // not in metadata.jsonl: ignored
	writeFile(t, filepath.Join(meta, "metadata.jsonl"), []byte(`{"file_name": "a.jpg", "text": "meta a", "original_width": 40}
{"file_name": "sub/b.png", "text": ["meta b1", "meta b2"]}
{"file_name": "gone.jpg", "text": "missing file"}
{"file_name": "c.jpg", "text": "broken image"}
{"file_name": "d.jpg"}
this line is not json

{"file_name": "d.jpg", "text": null}
{"file_name": "d.jpg", "text": "d again"}
`))
	writeFile(t, filepath.Join(txt, "x1.jpg"), jpg(5))
	writeFile(t, filepath.Join(txt, "x1.txt"), []byte("caption x1\n"))
	writeFile(t, filepath.Join(txt, "x2.webp"), vp8Bytes(32, 32, nil))
	writeFile(t, filepath.Join(txt, "x2.txt"), []byte("caption x2"))
	writeFile(t, filepath.Join(txt, "x3.jpg"), jpg(6)) // missing_caption
	writeFile(t, filepath.Join(txt, "deep", "x4.JPEG"), jpg(7))
	writeFile(t, filepath.Join(txt, "deep", "x4.txt"), []byte("caption x4"))
	writeFile(t, filepath.Join(txt, "readme.md"), []byte("not an image"))
	return meta, txt
}

func TestImageFolderEverySampleAndDrop(t *testing.T) {
	meta, txt := folderFixture(t)
	cfg := Config{Sources: []string{meta}, Resolution: 16, Epochs: 1, Workers: 2, BatchSize: 1}
	l := mustLoader(t, cfg)
	got := keysAndCaptions(collect(t, l))
	if len(got) != 3 || got[0] != "a.jpg=meta a" || (got[1] != "sub/b.png=meta b1" && got[1] != "sub/b.png=meta b2") || got[2] != "d.jpg=d again" {
		t.Errorf("metadata.jsonl folder: samples %q", got)
	}
	want := map[string]int64{"missing_image": 1, "undecodable_image": 1, "missing_caption": 2, "bad_metadata": 1}
	if d := l.Stats().Drops; !reflect.DeepEqual(d, want) {
		t.Errorf("metadata.jsonl folder: drops %v, want %v", d, want)
	}

	cfg.Sources = []string{txt}
	l = mustLoader(t, cfg)
	if got, want := keysAndCaptions(collect(t, l)), []string{"deep/x4.JPEG=caption x4", "x1.jpg=caption x1", "x2.webp=caption x2"}; !reflect.DeepEqual(got, want) {
		t.Errorf(".txt folder: samples %q, want %q", got, want)
	}
	if d := l.Stats().Drops; !reflect.DeepEqual(d, map[string]int64{"missing_caption": 1}) {
		t.Errorf(".txt folder: drops %v, want missing_caption 1", d)
	}
}

// Metadata filters read the metadata.jsonl line.
func TestImageFolderFilters(t *testing.T) {
	meta, _ := folderFixture(t)
	cfg := Config{Sources: []string{meta}, Resolution: 16, Epochs: 1, MinWidth: 30, BatchSize: 1}
	l := mustLoader(t, cfg)
	if got := keysAndCaptions(collect(t, l)); !reflect.DeepEqual(got, []string{"a.jpg=meta a"}) {
		t.Errorf("samples %q, want only a.jpg (the one with original_width)", got)
	}
}
