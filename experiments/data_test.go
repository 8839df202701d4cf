package main

import (
	"archive/tar"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golcm/golcm/datasets"
)

// TestDataInspectFailsWithoutUsableSamples: shards whose every image is broken fail `data inspect`
// just as missing shards do, and a missing folder is named as missing.
func TestDataInspectFailsWithoutUsableSamples(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.tar")
	f, err := os.Create(broken)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, m := range []struct{ name, body string }{{"a.jpg", "\xff\xd8\xffnot really"}, {"a.txt", "a cat"}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(m.body))
	}
	tw.Close()
	f.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-grid", "", broken}, "no usable sample"},
		{[]string{"-grid", "", filepath.Join(dir, "gone-{0..1}.tar")}, ""},
		{[]string{"-grid", "", filepath.Join(dir, "no-such-folder")}, "no such file or folder"},
	} {
		err := runDataInspect(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("data inspect %q: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	if err := runDataConvert([]string{"-out", filepath.Join(dir, "%05d.tar"), filepath.Join(dir, "no-such-folder")}); err == nil ||
		!strings.Contains(err.Error(), "no such file or folder") {
		t.Errorf("data convert of a missing folder: %v", err)
	}
}

// writeIDXFile writes an uncompressed IDX file of unsigned bytes.
func writeIDXFile(t *testing.T, path string, dims []int, values []byte) {
	t.Helper()
	data := []byte{0, 0, 0x08, byte(len(dims))}
	for _, d := range dims {
		data = binary.BigEndian.AppendUint32(data, uint32(d))
	}
	if err := os.WriteFile(path, append(data, values...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDataConvertIDXFlags: data convert -format idx turns images and labels into shards the loader
// reads at the requested resolution with the -label-names and -caption-template captions; without
// -resolution the images keep their size; a missing -labels is refused by name.
func TestDataConvertIDXFlags(t *testing.T) {
	dir := t.TempDir()
	images, labels := filepath.Join(dir, "img-idx3-ubyte"), filepath.Join(dir, "lab-idx1-ubyte")
	writeIDXFile(t, images, []int{3, 4, 4}, make([]byte, 3*16))
	writeIDXFile(t, labels, []int{3}, []byte{1, 0, 1})
	out := filepath.Join(dir, "shards", "%02d.tar")
	if err := runDataConvert([]string{"-format", "idx", "-labels", labels, "-label-names", "cat,owl",
		"-caption-template", "{a} {label}", "-resolution", "8", "-per-shard", "2", "-out", out, images}); err != nil {
		t.Fatal(err)
	}
	l, err := datasets.New(datasets.Config{Sources: []string{filepath.Join(dir, "shards")}, Resolution: 8, BatchSize: 3, Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, err := l.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.Captions, "|"); got != "an owl|a cat|an owl" || b.Samples[0].OriginalW != 8 {
		t.Errorf("captions %q, width %d; want an owl|a cat|an owl, 8", got, b.Samples[0].OriginalW)
	}
	if err := runDataConvert([]string{"-format", "idx", "-labels", labels, "-out", filepath.Join(dir, "k%d.tar"), images}); err != nil {
		t.Fatal(err)
	}
	l2, err := datasets.New(datasets.Config{Sources: []string{filepath.Join(dir, "k0.tar")}, Resolution: 4, BatchSize: 1, Epochs: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if b, err := l2.Next(t.Context()); err != nil || b.Samples[0].OriginalW != 4 || b.Captions[0] != "a photo of a trouser" {
		t.Errorf("default resolution and captions: %v, %+v", err, b)
	}
	if err := runDataConvert([]string{"-format", "idx", "-out", out, images}); err == nil || !strings.Contains(err.Error(), "-labels") {
		t.Errorf("no -labels: %v", err)
	}
}
