package lora_test

import (
	"testing"

	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/unet"
)

// sd15UNet is runwayml/stable-diffusion-v1-5's unet/config.json (the keys that
// shape it; the rest are diffusers' defaults).
const sd15UNet = `{
  "block_out_channels": [320, 640, 1280, 1280],
  "layers_per_block": 2,
  "attention_head_dim": 8,
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "norm_num_groups": 32,
  "in_channels": 4, "out_channels": 4
}`

// sdxlUNet is stabilityai/stable-diffusion-xl-base-1.0's unet/config.json
// (the keys that shape it).
const sdxlUNet = `{
  "block_out_channels": [320, 640, 1280],
  "layers_per_block": 2,
  "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
  "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
  "attention_head_dim": [5, 10, 20],
  "transformer_layers_per_block": [1, 2, 10],
  "cross_attention_dim": 2048,
  "use_linear_projection": true,
  "addition_embed_type": "text_time",
  "addition_time_embed_dim": 256,
  "projection_class_embeddings_input_dim": 2816,
  "norm_num_groups": 32,
  "in_channels": 4, "out_channels": 4
}`

// TestTrainableCounts checks the LCM-LoRA parameter counts at rank 64 with
// the default targets: 67,252,224 for SD1.5 and 196,751,360 for SDXL (the
// reference's PEFT counts; the LCM-LoRA paper rounds them to 67.5M / 197M).
// `go test ./models/lora -run TestTrainableCounts -v` prints them.
func TestTrainableCounts(t *testing.T) {
	for _, c := range []struct {
		name, config string
		want         int
	}{
		{"SD1.5", sd15UNet, 67_252_224},
		{"SDXL", sdxlUNet, 196_751_360},
	} {
		cfg, err := unet.ParseConfig([]byte(c.config), c.name)
		if err != nil {
			t.Fatal(err)
		}
		shapes := cfg.ParamShapes()
		mods, err := lora.Modules(shapes, lora.Config{Rank: 64, Alpha: 64})
		if err != nil {
			t.Fatal(err)
		}
		n, err := lora.CountTrainable(shapes, lora.Config{Rank: 64, Alpha: 64})
		if err != nil {
			t.Fatal(err)
		}
		convs := 0
		for _, m := range mods {
			if m.Conv() {
				convs++
			}
		}
		t.Logf("%s UNet, rank 64, default targets: %d adapted modules (%d Conv2d, %d Linear), %d trainable parameters",
			c.name, len(mods), convs, len(mods)-convs, n)
		if n != c.want {
			t.Errorf("%s: %d trainable parameters, want %d", c.name, n, c.want)
		}
	}
}
