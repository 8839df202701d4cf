package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPluginFile(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		config, want string
		ok           bool
	}{
		{"xla:/opt/py/jax_plugins/xla_cuda13/xla_cuda_plugin.so", "/opt/py/jax_plugins/xla_cuda13/xla_cuda_plugin.so", true},
		{"xla:/opt/p.so,preallocate=true,memory_fraction=0.5", "/opt/p.so", true},
		{"xla:plugins/xla_cuda_plugin.so", filepath.Join(wd, "plugins/xla_cuda_plugin.so"), true},
		{"xla:pjrt_c_api_cuda_plugin.so", filepath.Join(wd, "pjrt_c_api_cuda_plugin.so"), true},
		{"xla:/opt/lib/../lib/p.so", "/opt/lib/p.so", true},
		{"xla:cuda", "", false},
		{"xla:cuda,preallocate=false", "", false},
		{"xla", "", false},
		{"go", "", false},
		{"go:ops_parallel,parallelism=-1", "", false},
	} {
		got, ok := pluginFile(tc.config)
		if got != tc.want || ok != tc.ok {
			t.Errorf("pluginFile(%q) = %q, %v; want %q, %v", tc.config, got, ok, tc.want, tc.ok)
		}
	}
}

func TestResolvePluginMakesThePathAbsoluteAndKeepsOptions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.so"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, err := resolvePlugin(Choice{Config: "xla:./p.so,preallocate=true", Reason: "requested"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "xla:" + filepath.Join(dir, "p.so") + ",preallocate=true"; c.Config != want {
		t.Errorf("resolved config %q, want %q", c.Config, want)
	}
	if c, err := resolvePlugin(Choice{Config: "xla:cuda"}); err != nil || c.Config != "xla:cuda" {
		t.Errorf("a plugin name is left alone: %+v, %v", c, err)
	}
}

// TestMissingPluginFileIsAClearError: a wrong path fails before anything is
// loaded (or downloaded), with an error naming the path and what to do; in a
// CGO_ENABLED=0 build too, where the check runs before "xla is not compiled in".
func TestMissingPluginFileIsAClearError(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "site-packages", "jax_plugins", "xla_cuda13", "xla_cuda_plugin.so")
	t.Setenv(EnvVar, "xla:"+missing)
	_, _, err := Default("")
	if err == nil {
		t.Fatal("a missing plugin file gave no error")
	}
	for _, want := range []string{missing, "does not exist", "never downloads", "$" + EnvVar} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	_, err = New(Choice{Config: "xla:" + dir, Reason: "requested"})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "is a folder") {
		t.Errorf("a folder as the plugin: err = %v", err)
	}
	t.Log(err)
}
