package unet

import "testing"

// TestParameterCounts checks the schema against the known sizes of the real
// architectures: SD 1.5's UNet has 859,520,964 parameters and SDXL's
// 2,567,463,684 (diffusers' num_parameters()).
func TestParameterCounts(t *testing.T) {
	for name, want := range map[string]int{"sd15": 859520964, "sdxl": 2567463684} {
		cfg, _, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		n := cfg.NumParams()
		t.Logf("%s UNet: %d parameters", name, n)
		if n != want {
			t.Errorf("%s: %d parameters, want %d", name, n, want)
		}
	}
}

// TestConfigRejectsUnsupportedValues: golcm never silently ignores a key.
func TestConfigRejectsUnsupportedValues(t *testing.T) {
	for _, c := range []struct{ json, key string }{
		{`{"block_out_channels": [32, 64], "resnet_time_scale_shift": "scale_shift"}`, "resnet_time_scale_shift"},
		{`{"block_out_channels": [32, 64], "class_embed_type": "timestep"}`, "class_embed_type"},
		{`{"block_out_channels": [32, 64], "layers_per_block": [1, 2, 3]}`, "layers_per_block"},
		{`{"block_out_channels": [32, 64], "down_block_types": ["SimpleCrossAttnDownBlock2D", "DownBlock2D"]}`, "down_block_types"},
	} {
		base := `"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "norm_num_groups": 8, "attention_head_dim": 4, "cross_attention_dim": 16, `
		js := "{" + base + c.json[1:]
		_, err := ParseConfig([]byte(js), "test.json")
		if err == nil {
			t.Errorf("%s: accepted", c.key)
			continue
		}
		t.Logf("%v", err)
	}
}
