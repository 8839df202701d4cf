package unet

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestConfigRefusesUnsupportedValues: a config.json value the UNet does not
// implement is an error of ParseConfig naming the file and key, never a
// panic while the graph is built.
func TestConfigRefusesUnsupportedValues(t *testing.T) {
	_, raw, err := Preset(PresetNames()[0])
	if err != nil {
		t.Fatal(err)
	}
	for key, value := range map[string]any{"mid_block_scale_factor": 2.0, "act_fn": "gelu", "dropout": 0.1} {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		m[key] = value
		data, _ := json.Marshal(m)
		_, err := ParseConfig(data, "x/config.json")
		if err == nil || !strings.Contains(err.Error(), "unet config x/config.json: "+key) {
			t.Errorf("%s = %v: err = %v, want an error naming the file and key", key, value, err)
		}
	}
}
