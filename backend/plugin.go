package backend

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A PJRT plugin can be named by file: "xla:/abs/path/xla_cuda_plugin.so",
// optionally followed by go-xla's ",option=value" list. golcm loads such a
// plugin where it lies, because CUDA plugins (JAX's jax-cuda13-pjrt wheel,
// for one) find their CUDA libraries relative to their own location.

// pluginFile returns the PJRT plugin file named by an "xla:" configuration,
// made absolute, and ok=false when the configuration names a plugin by name
// ("xla:cuda") or is not XLA at all. A name is a file when it holds a path
// separator or ends in a shared-library suffix; go-xla itself only loads
// absolute paths by path, so a relative one is made absolute here (against
// the working directory) rather than searched for as a plugin name.
func pluginFile(config string) (path string, ok bool) {
	name, rest, found := strings.Cut(config, ":")
	if name != "xla" || !found {
		return "", false
	}
	plugin, _, _ := strings.Cut(rest, ",")
	if !strings.ContainsRune(plugin, filepath.Separator) && !strings.HasSuffix(plugin, ".so") &&
		!strings.HasSuffix(plugin, ".dylib") {
		return "", false
	}
	abs, err := filepath.Abs(plugin)
	if err != nil {
		return plugin, true // checkPluginFile reports it
	}
	return abs, true
}

// resolvePlugin rewrites a configuration that names a plugin file to its
// absolute path and checks that the file is there, so a wrong path is a
// clear error naming it instead of go-xla's dlopen message or, for a
// relative path, a search for a plugin called "dir/file.so".
func resolvePlugin(c Choice) (Choice, error) {
	path, ok := pluginFile(c.Config)
	if !ok {
		return c, nil
	}
	_, rest, _ := strings.Cut(c.Config, ":")
	_, options, hasOptions := strings.Cut(rest, ",")
	c.Config = "xla:" + path
	if hasOptions {
		c.Config += "," + options
	}
	if err := checkPluginFile(path); err != nil {
		return c, fmt.Errorf("backend %q (%s): %w", c.Config, c.Reason, err)
	}
	return c, nil
}

func checkPluginFile(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("PJRT plugin file %s does not exist (golcm never downloads a plugin: install one, "+
			"e.g. pip install \"jax-cuda13-plugin[with-cuda]\", and give its xla_cuda_plugin.so; see README, GPU)", path)
	case err != nil:
		return fmt.Errorf("PJRT plugin file %s: %w", path, err)
	case st.IsDir():
		return fmt.Errorf("PJRT plugin %s is a folder: give the plugin's .so file inside it", path)
	}
	return nil
}

// loadHint is what New adds to an XLA backend's creation error.
func loadHint(c Choice) string {
	if path, ok := pluginFile(c.Config); ok {
		return fmt.Sprintf(" (loading the PJRT plugin %s failed; a CUDA plugin outside Python needs its CUDA "+
			"libraries on LD_LIBRARY_PATH: the nvidia/*/lib folders of the CUDA wheels, as experiments/gpu-check.sh sets)", path)
	}
	return fmt.Sprintf(" (installed PJRT plugins: %v; golcm never downloads one: install it, or set %s=go)",
		InstalledPlugins(), EnvVar)
}
