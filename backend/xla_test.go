//go:build cgo

package backend

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/go-xla/compute/xla"
)

// TestNoPluginDownloader: go-xla downloads plugins only through its
// autoinstall package; golcm must not link it (see the package comment), so
// no configuration can start a download.
func TestNoPluginDownloader(t *testing.T) {
	if err := xla.AutoInstall(); !errors.Is(err, xla.ErrNoAutoInstaller) {
		t.Fatalf("xla.AutoInstall() = %v: a plugin downloader is linked into golcm", err)
	}
}

// TestBrokenPluginFileNamesThePath: a file that is there but no loadable
// library fails in go-xla's dlopen; the error names the file and says where a
// CUDA plugin's libraries must be found.
func TestBrokenPluginFileNamesThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xla_cuda_plugin.so")
	if err := os.WriteFile(path, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(Choice{Config: "xla:" + path, Reason: "requested"})
	if err == nil {
		t.Fatal("a broken plugin file loaded")
	}
	for _, want := range []string{path, "LD_LIBRARY_PATH"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Log(err)
}
