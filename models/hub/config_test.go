package hub

import (
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

type fakeConfig struct {
	Path  string
	Width int `json:"width"`
	Depth int `json:"depth"`
}

func (c *fakeConfig) SetPath(p string) { c.Path = p }
func (c *fakeConfig) Validate() error {
	if c.Width <= 0 {
		return ConfigError("fake", c.Path, "width", "is %d, want at least 1", c.Width)
	}
	return nil
}

// TestModelConfigDecodesOverDefaultsAndValidates: keys the file gives
// replace the defaults, the others stay; the file is named in every error,
// and decode and read errors keep their cause.
func TestModelConfigDecodesOverDefaultsAndValidates(t *testing.T) {
	c, err := ParseModelConfig[fakeConfig]("fake", []byte(`{"width": 3}`), "a/config.json", fakeConfig{Width: 1, Depth: 7})
	if err != nil || c.Width != 3 || c.Depth != 7 || c.Path != "a/config.json" {
		t.Fatalf("ParseModelConfig = %+v, %v; want width 3, default depth 7, the path", c, err)
	}
	_, err = ParseModelConfig[fakeConfig]("fake", []byte(`{"width": 0}`), "b.json", fakeConfig{})
	if err == nil || err.Error() != "fake config b.json: width: is 0, want at least 1" {
		t.Errorf("invalid width: %v", err)
	}
	var syntax *json.SyntaxError
	if _, err = ParseModelConfig[fakeConfig]("fake", []byte(`{`), "c.json", fakeConfig{}); !errors.As(err, &syntax) || !strings.Contains(err.Error(), "c.json") {
		t.Errorf("bad JSON: %v, want a wrapped *json.SyntaxError naming c.json", err)
	}
	if _, err = ReadModelConfig[fakeConfig]("fake", filepath.Join(t.TempDir(), "none.json"), fakeConfig{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}
