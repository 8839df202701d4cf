package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
