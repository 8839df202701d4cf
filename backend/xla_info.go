//go:build cgo

package backend

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/go-xla/compute/xla"
	"github.com/gomlx/go-xla/pjrt"
)

// xlaInfo describes the PJRT plugin an XLA backend runs on, for the
// start-up line: its PJRT C API version, the attributes it reports (XLA and
// StableHLO versions) and device 0, which names the platform and card.
// It is "" for other backends.
func xlaInfo(b compute.Backend) string {
	xb, ok := b.(*xla.Backend)
	if !ok {
		return ""
	}
	var parts []string
	// The plugin is already loaded: GetPlugin returns it from go-xla's cache.
	if p, err := pjrt.GetPlugin(xb.PluginName()); err == nil {
		major, minor := p.Version()
		parts = append(parts, fmt.Sprintf("PJRT C API v%d.%d", major, minor))
		attrs := p.Attributes()
		keys := make([]string, 0, len(attrs))
		for k := range attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%v", k, attrs[k]))
		}
	}
	if xb.IsCUDA() && xb.DotGeneralUseTF32 {
		// go-xla's default on CUDA; it changes float32 results, so the line says it.
		parts = append(parts, "float32 matmuls in TF32 (\",notf32\" after the plugin turns it off)")
	}
	// The client's platform name and version are not exported by go-xla's
	// Backend; device 0's description names the platform and card.
	if b.NumDevices() > 0 {
		parts = append(parts, "device 0: "+b.DeviceDescription(0))
	}
	return strings.Join(parts, ", ")
}
