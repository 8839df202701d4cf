package vae

import (
	"slices"
	"strings"
	"testing"

	"github.com/golcm/golcm/models/nn"
)

// TestConfigRejectsUnsupportedValues: a key golcm does not implement gives an
// error naming the key and the value.
func TestConfigRejectsUnsupportedValues(t *testing.T) {
	cases := []struct{ json, key, value string }{
		{`{"down_block_types": ["AttnDownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D"]}`, "down_block_types", "AttnDownEncoderBlock2D"},
		{`{"act_fn": "gelu"}`, "act_fn", "gelu"},
		{`{"_class_name": "AutoencoderTiny"}`, "_class_name", "AutoencoderTiny"},
		{`{"block_out_channels": [48], "norm_num_groups": 32}`, "block_out_channels", "48"},
		{`{"latents_mean": [0.1, 0.2, 0.3, 0.4]}`, "latents_mean", "0.1"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json), "vae/config.json")
		if err == nil {
			t.Errorf("%s: no error", c.json)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.key) || !strings.Contains(msg, c.value) || !strings.Contains(msg, "vae/config.json") {
			t.Errorf("%s: error %q does not name file, key %q and value %q", c.json, msg, c.key, c.value)
		}
	}
}

// TestConfigDefaultsFollowDiffusers: omitted keys take AutoencoderKL's
// constructor defaults.
func TestConfigDefaultsFollowDiffusers(t *testing.T) {
	c, err := ParseConfig([]byte(`{"block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "norm_num_groups": 32}`), "x")
	if err != nil {
		t.Fatal(err)
	}
	if !c.UseQuantConv || !c.UsePostQuantConv || !c.MidBlockAddAttention || c.LatentChannels != 4 || c.Shift() != 0 || c.DownsampleFactor() != 2 {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// TestLegacyAttentionNamesAreRenamed: pre-0.14 diffusers names
// (query/key/value/proj_attn, possibly as 1×1 convs) load as to_q/to_k/to_v/
// to_out.0 Linear weights.
func TestLegacyAttentionNamesAreRenamed(t *testing.T) {
	w := nn.NewWeights()
	w.SetFloat32("encoder.mid_block.attentions.0.query.weight", make([]float32, 4), 2, 2, 1, 1)
	w.SetFloat32("encoder.mid_block.attentions.0.proj_attn.bias", make([]float32, 2), 2)
	w.SetFloat32("encoder.mid_block.attentions.0.group_norm.bias", make([]float32, 2), 2)
	if err := renameLegacyAttention(w); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"encoder.mid_block.attentions.0.group_norm.bias",
		"encoder.mid_block.attentions.0.to_out.0.bias",
		"encoder.mid_block.attentions.0.to_q.weight",
	}
	if got := w.Names(); !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	q, _ := w.Get("encoder.mid_block.attentions.0.to_q.weight")
	if d := q.Shape().Dimensions; !slices.Equal(d, []int{2, 2}) {
		t.Errorf("to_q.weight is %v, want [2 2]", d)
	}
}
