package unet

import (
	"fmt"
	"sort"
)

// presets are UNet configs golcm knows by name: the real SD 1.5 and SDXL
// architectures (for parameter counts and benchmarks with random weights),
// the "small" benchmark UNet, the "tiny" UNet of golcm's own CPU teacher and
// the "fashion" UNet of the Fashion-MNIST teacher.
var presets = map[string]string{
	"sd15": `{"block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2, "attention_head_dim": 8,
		"cross_attention_dim": 768, "norm_num_groups": 32, "sample_size": 64,
		"down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
		"up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}`,
	"sdxl": `{"block_out_channels": [320, 640, 1280], "layers_per_block": 2, "attention_head_dim": [5, 10, 20],
		"transformer_layers_per_block": [1, 2, 10], "cross_attention_dim": 2048, "use_linear_projection": true,
		"addition_embed_type": "text_time", "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816,
		"norm_num_groups": 32, "sample_size": 128,
		"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
		"up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]}`,
	"small": `{"block_out_channels": [64, 128, 128], "layers_per_block": 1, "attention_head_dim": 4,
		"cross_attention_dim": 128, "norm_num_groups": 32, "sample_size": 32,
		"down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
		"up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}`,
	// fashion: the teacher golcm trains from scratch on Fashion-MNIST's 8×8×4
	// latents (32×32 images, ×4 VAE), sized to train on two CPU cores.
	"fashion": `{"block_out_channels": [32, 64, 64], "layers_per_block": 1, "attention_head_dim": 4,
		"cross_attention_dim": 64, "norm_num_groups": 8, "sample_size": 8,
		"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
		"up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]}`,
	"tiny": `{"block_out_channels": [32, 64], "layers_per_block": 1, "attention_head_dim": 4,
		"cross_attention_dim": 64, "norm_num_groups": 8, "sample_size": 8,
		"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
		"up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"]}`,
}

// PresetNames lists the known preset names.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns a named architecture (see PresetNames) and its config.json
// bytes.
func Preset(name string) (*Config, []byte, error) {
	raw, ok := presets[name]
	if !ok {
		return nil, nil, fmt.Errorf("unet preset %q unknown (known: %v)", name, PresetNames())
	}
	cfg, err := ParseConfig([]byte(raw), "preset "+name)
	if err != nil {
		return nil, nil, err
	}
	return cfg, []byte(raw), nil
}
