//go:build !cgo

package backend

import "github.com/gomlx/compute"

// InstalledPlugins is empty without cgo: PJRT plugins are C libraries that
// only a cgo build can load, so XLA is not compiled in and "xla" is an
// unknown backend name.
func InstalledPlugins() []string { return nil }

// notCompiledIn says why a known backend is missing from this build.
var notCompiledIn = map[string]string{
	"xla": " (XLA loads PJRT plugins through cgo: rebuild with CGO_ENABLED=1 and a C compiler)",
}

// xlaInfo is empty without cgo: there is no XLA backend to describe.
func xlaInfo(compute.Backend) string { return "" }
