package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/vae"
)

// TestResizeComponent: the cache rows' resize of a tiny pipeline's VAE
// writes the new keys into its config.json and weights of the new shapes:
// AutoencoderKL's encoder.conv_in is [block_out_channels[0], 3, 3, 3] and its
// first down block has layers_per_block resnets; keys it was not given keep
// their value.
func TestResizeComponent(t *testing.T) {
	dir := t.TempDir()
	if err := pipeline.InitTiny(dir, 1); err != nil {
		t.Fatal(err)
	}
	keys := map[string]any{"block_out_channels": []int{32, 64, 64, 64}, "layers_per_block": 2, "norm_num_groups": 8}
	if err := resizeComponent(filepath.Join(dir, "vae"), "diffusion_pytorch_model.safetensors", keys, paramShapes(vae.ParseConfig), 2); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "vae", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		BlockOut   []int  `json:"block_out_channels"`
		Layers     int    `json:"layers_per_block"`
		Groups     int    `json:"norm_num_groups"`
		ClassName  string `json:"_class_name"`
		LatentChan int    `json:"latent_channels"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.BlockOut, []int{32, 64, 64, 64}) || cfg.Layers != 2 || cfg.Groups != 8 || cfg.ClassName != "AutoencoderKL" || cfg.LatentChan != 4 {
		t.Errorf("config.json after resize: %+v", cfg)
	}
	w, err := nn.ReadWeights(filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if _, dims, err := w.Float32("encoder.conv_in.weight"); err != nil || !slices.Equal(dims, []int{32, 3, 3, 3}) {
		t.Errorf("encoder.conv_in.weight: %v (%v), want [32 3 3 3]", dims, err)
	}
	if _, _, err := w.Float32("encoder.down_blocks.0.resnets.1.conv1.weight"); err != nil {
		t.Errorf("second resnet of the first down block: %v", err)
	}
	if _, _, err := w.Float32("encoder.down_blocks.0.resnets.2.conv1.weight"); err == nil {
		t.Error("a third resnet with layers_per_block 2")
	}
	if _, err := vae.Load(filepath.Join(dir, "vae"), ""); err != nil {
		t.Errorf("the resized VAE does not load: %v", err)
	}
}
