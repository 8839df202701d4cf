//go:build cgo

package backend

import (
	"sort"

	"github.com/gomlx/go-xla/compute/xla"
	"github.com/gomlx/go-xla/pjrt"
)

func init() {
	// Never fetch PJRT plugins from the network (see the package comment).
	xla.EnableAutoInstall(false)
}

// InstalledPlugins lists the PJRT plugins found in the standard places
// ($PJRT_PLUGIN_LIBRARY_PATH, /usr/local/lib/go-xla, ~/.local/lib/go-xla,
// the system library path), sorted.
func InstalledPlugins() []string {
	var names []string
	for name := range pjrt.AvailablePlugins() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// notCompiledIn says why a known backend is missing from this build: a cgo
// build has them all.
var notCompiledIn = map[string]string{}
