package clip

import (
	"strings"
	"testing"
)

// TestConfigRejectsUnsupportedValues: a key golcm does not implement gives an
// error naming the file, the key and the value.
func TestConfigRejectsUnsupportedValues(t *testing.T) {
	cases := []struct{ json, key, value string }{
		{`{"hidden_act": "relu"}`, "hidden_act", "relu"},
		{`{"architectures": ["CLIPModel"]}`, "architectures", "CLIPModel"},
		{`{"model_type": "clip"}`, "model_type", "clip"},
		{`{"hidden_size": 30, "num_attention_heads": 4}`, "num_attention_heads", "4"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json), "text_encoder/config.json")
		if err == nil {
			t.Errorf("%s: no error", c.json)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.key) || !strings.Contains(msg, c.value) || !strings.Contains(msg, "text_encoder/config.json") {
			t.Errorf("%s: error %q does not name file, key %q and value %q", c.json, msg, c.key, c.value)
		}
	}
}

// TestArchitecturesSelectProjection: CLIPTextModelWithProjection adds
// text_projection.weight (no bias) to the schema.
func TestArchitecturesSelectProjection(t *testing.T) {
	c, err := ParseConfig([]byte(`{"architectures": ["CLIPTextModelWithProjection"], "hidden_size": 24, "num_attention_heads": 4, "projection_dim": 16}`), "x")
	if err != nil {
		t.Fatal(err)
	}
	p := c.ParamShapes()
	if d, ok := p["text_projection.weight"]; !ok || d[0] != 16 || d[1] != 24 || c.OutputDim() != 16 {
		t.Errorf("text_projection.weight %v (present %v), output dim %d", d, ok, c.OutputDim())
	}
	if _, ok := p["text_projection.bias"]; ok {
		t.Errorf("text_projection has a bias")
	}
}
