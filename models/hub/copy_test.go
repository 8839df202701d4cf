package hub

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCopyComponentFollowsCacheLinks copies a Hugging Face cache snapshot
// folder whose files are relative links into blobs/, with fp16 weights only:
// the copy holds regular files (hard links to the blobs, here on one
// filesystem), the weights named without the variant, the other variant's
// files left out.
func TestCopyComponentFollowsCacheLinks(t *testing.T) {
	root := t.TempDir()
	blobs := filepath.Join(root, "blobs")
	snap := filepath.Join(root, "snapshots", "abc", "text_encoder")
	for _, d := range []string{blobs, snap} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"config.json": "{}", "model.fp16.safetensors": "fp16 weights", "model.bf16.safetensors": "bf16"}
	for name, body := range files {
		blob := filepath.Join(blobs, "sha-"+name)
		if err := os.WriteFile(blob, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "..", "blobs", "sha-"+name), filepath.Join(snap, name)); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(root, "export", "text_encoder")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CopyComponent(snap, dst, "fp16"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if e.Type()&os.ModeSymlink != 0 {
			t.Errorf("%s is a link", e.Name())
		}
	}
	if len(names) != 2 || names[0] != "config.json" || names[1] != "model.safetensors" {
		t.Fatalf("copied %v, want [config.json model.safetensors]", names)
	}
	got, _ := os.ReadFile(filepath.Join(dst, "model.safetensors"))
	if string(got) != "fp16 weights" {
		t.Errorf("model.safetensors holds %q, want the fp16 variant's bytes", got)
	}
	a, _ := os.Stat(filepath.Join(dst, "model.safetensors"))
	b, _ := os.Stat(filepath.Join(blobs, "sha-model.fp16.safetensors"))
	if !os.SameFile(a, b) {
		t.Errorf("model.safetensors is a copy, want a hard link to the blob on the same filesystem")
	}
}
