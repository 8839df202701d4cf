package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/compute"

	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/experiments/runner"
	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/models/vae"
)

// The cache rows time whole training runs side by side: steps/s of the
// row's UNet trained from images (decode, resize, SD 1.5's VAE encoder and
// a CLIP ViT-L-sized text encoder every step) and from a latent cache of the
// same data (written first, and timed too), on a random pipeline: the
// preset's UNet (cross_attention_dim set to the encoder's 768), SD 1.5's
// AutoencoderKL architecture, a 12-layer 768-wide CLIP text encoder with
// golcm's small tokenizer (the vocabulary size barely matters to the time).

// sd15VAE is the AutoencoderKL architecture of SD 1.5 (and its config keys
// that differ from the tiny pipeline's).
var sd15VAE = map[string]any{"block_out_channels": []int{128, 256, 512, 512}, "layers_per_block": 2, "norm_num_groups": 32}

// clipL is CLIP ViT-L/14's text encoder, SD 1.5's.
var clipL = map[string]any{"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
	"num_hidden_layers": 12, "projection_dim": 768}

// cacheBenchSteps are the steps each run takes: the first compiles, the
// others are timed.
const cacheBenchSteps = 3

// benchCache runs a cache row.
func benchCache(b compute.Backend, c benchCase, budgetGiB float64) (string, error) {
	cfg, presetRaw, err := unet.Preset(c.preset)
	if err != nil {
		return "", err
	}
	// As the step rows: teacher, student, EMA target and two AdamW moments;
	// a LoRA run holds the teacher (its adapters and their moments are
	// small).
	copies, mode := 5.0, "full"
	if c.kind == kindCacheLoRA {
		copies, mode = 1, "lora"
	}
	if need := copies * 4 * float64(cfg.NumParams()) / (1 << 30); need > budgetGiB {
		return fmt.Sprintf("%-6s %-24s skipped: its weights and optimizer state alone are %.1f GiB, over -mem-budget %.0f GiB",
			c.preset, c.what(), need, budgetGiB), nil
	}
	tmp, err := os.MkdirTemp("", "golcm-bench-cache-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	pipe := filepath.Join(tmp, "pipeline")
	if err := writeCacheBenchPipeline(pipe, presetRaw); err != nil {
		return "", err
	}
	images := filepath.Join(tmp, "images")
	px := 8 * c.size
	if err := datasets.WriteSyntheticImages(images, 2*c.batch, px, 1); err != nil {
		return "", err
	}
	s, err := spec.Load("", []string{
		"model.path=" + pipe, fmt.Sprintf("data.sources=[%q]", images), "data.resolution=" + fmt.Sprint(px),
		"data.batch_size=" + fmt.Sprint(c.batch), "data.center_crop=true", "data.workers=2",
		"optim.max_train_steps=" + fmt.Sprint(cacheBenchSteps), "run.checkpoint_every=0", "run.validation_every=0",
		"distill.mode=" + mode,
		"run.gradient_checkpointing=" + fmt.Sprint(c.checkpoint), "run.output_dir=" + filepath.Join(tmp, "from-images"),
	})
	if err != nil {
		return "", err
	}
	resetPeakRSS()
	fromImages, err := timedRun(s)
	if err != nil {
		return "", fmt.Errorf("bench %s from images: %w", c.id(), err)
	}
	s.Data.Cache = filepath.Join(tmp, "cache")
	start := time.Now()
	rep, err := runner.BuildCache(context.Background(), s, runner.CacheOptions{Options: runner.Options{Log: io.Discard, NoProgress: true}})
	if err != nil {
		return "", fmt.Errorf("bench %s: data cache: %w", c.id(), err)
	}
	build := time.Since(start).Seconds()
	s.Run.OutputDir = filepath.Join(tmp, "from-cache")
	fromCache, err := timedRun(s)
	if err != nil {
		return "", fmt.Errorf("bench %s from the cache: %w", c.id(), err)
	}
	return fmt.Sprintf("%-6s %-24s %5d %7s  steps/s from images %.4g, from the cache %.4g (%.2f×); data cache: %d samples in %.1f s (loading and compiling included); peak rss %s",
		c.preset, c.what(), c.batch, fmt.Sprintf("%dx%d", c.size, c.size), fromImages, fromCache, fromCache/fromImages,
		rep.Samples, build, peakRSS()), nil
}

// timedRun trains s and returns its steps/s after the first step (which
// compiles the step and the encoders).
func timedRun(s spec.Spec) (float64, error) {
	var first time.Time
	var last time.Time
	_, err := runner.Run(context.Background(), s, runner.Options{Log: io.Discard, NoProgress: true,
		OnStep: func(step int, _ *lcm.StepResult) {
			if step == 1 {
				first = time.Now()
			}
			last = time.Now()
		}})
	if err != nil {
		return 0, err
	}
	return float64(cacheBenchSteps-1) / last.Sub(first).Seconds(), nil
}

// writeCacheBenchPipeline writes the tiny pipeline into dir and replaces
// its VAE, text encoder and UNet with the bench's architectures (random
// weights): unetPreset's config with cross_attention_dim 768.
func writeCacheBenchPipeline(dir string, unetPreset []byte) error {
	if err := pipeline.InitTiny(dir, 1); err != nil {
		return err
	}
	if err := resizeComponent(filepath.Join(dir, "vae"), "diffusion_pytorch_model.safetensors", sd15VAE, paramShapes(vae.ParseConfig), 2); err != nil {
		return err
	}
	if err := resizeComponent(filepath.Join(dir, "text_encoder"), "model.safetensors", clipL, paramShapes(clip.ParseConfig), 3); err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(unetPreset, &m); err != nil {
		return err
	}
	m["_class_name"], m["cross_attention_dim"], m["in_channels"], m["out_channels"] = "UNet2DConditionModel", 768, 4, 4
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ucfg, err := unet.ParseConfig(raw, "bench unet")
	if err != nil {
		return err
	}
	return (&unet.Model{Config: ucfg, Weights: nn.RandomWeights(ucfg.ParamShapes(), 4, 0.02), RawConfig: raw}).Save(filepath.Join(dir, "unet"))
}

// paramShapes turns a model package's ParseConfig into the parameter
// shapes of the config it parses.
func paramShapes[C interface{ ParamShapes() map[string][]int }](parse func([]byte, string) (C, error)) func([]byte, string) (map[string][]int, error) {
	return func(raw []byte, path string) (map[string][]int, error) {
		cfg, err := parse(raw, path)
		if err != nil {
			return nil, err
		}
		return cfg.ParamShapes(), nil
	}
}

// resizeComponent sets keys in the component folder's config.json and
// writes random weights (seed, std 0.02) of the shapes the new config has
// (shapes parses it) as its weights file.
func resizeComponent(dir, weights string, keys map[string]any, shapes func([]byte, string) (map[string][]int, error), seed uint64) error {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for k, v := range keys {
		m[k] = v
	}
	if data, err = json.MarshalIndent(m, "", "  "); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	sh, err := shapes(data, path)
	if err != nil {
		return err
	}
	return nn.WriteWeights(filepath.Join(dir, weights), nn.RandomWeights(sh, seed, 0.02), "F32")
}
