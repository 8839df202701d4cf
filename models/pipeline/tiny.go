package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/models/vae"
)

// diffusersVersion is the version the tiny pipeline's configs claim: the
// one the golden fixtures were made with.
const diffusersVersion = "0.26.3"

// tinyVAEConfig is an AutoencoderKL with SD's 8× downsampling (four levels)
// and few channels. With the "tiny" UNet's sample_size 8 the pipeline makes
// 64×64 images from 8×8 latents.
var tinyVAEConfig = map[string]any{
	"_class_name":        "AutoencoderKL",
	"_diffusers_version": diffusersVersion,
	"act_fn":             "silu",
	"block_out_channels": []int{8, 16, 16, 16},
	"down_block_types":   []string{"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"},
	"up_block_types":     []string{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"},
	"force_upcast":       true,
	"in_channels":        3,
	"out_channels":       3,
	"latent_channels":    4,
	"layers_per_block":   1,
	"norm_num_groups":    4,
	"sample_size":        64,
	"scaling_factor":     0.18215,
}

// tinySchedulerConfig is SD 1.5's scheduler config (PNDM with
// skip_prk_steps): the tiny pipeline is a teacher, and LCMScheduler and the
// distillation's DDPM schedule read the same betas from it.
var tinySchedulerConfig = map[string]any{
	"_class_name":         "PNDMScheduler",
	"_diffusers_version":  diffusersVersion,
	"beta_end":            0.012,
	"beta_schedule":       "scaled_linear",
	"beta_start":          0.00085,
	"num_train_timesteps": 1000,
	"prediction_type":     "epsilon",
	"set_alpha_to_one":    false,
	"skip_prk_steps":      true,
	"steps_offset":        1,
	"timestep_spacing":    "leading",
	"trained_betas":       nil,
}

// tinyModelIndex is the model_index.json of a StableDiffusionPipeline
// without safety checker.
var tinyModelIndex = map[string]any{
	"_class_name":             "StableDiffusionPipeline",
	"_diffusers_version":      diffusersVersion,
	"feature_extractor":       []any{nil, nil},
	"image_encoder":           []any{nil, nil},
	"requires_safety_checker": false,
	"safety_checker":          []any{nil, nil},
	"scheduler":               []string{"diffusers", "PNDMScheduler"},
	"text_encoder":            []string{"transformers", "CLIPTextModel"},
	"tokenizer":               []string{"transformers", "CLIPTokenizer"},
	"unet":                    []string{"diffusers", "UNet2DConditionModel"},
	"vae":                     []string{"diffusers", "AutoencoderKL"},
}

// embeddingStd is transformers' CLIP initializer_range: token and position
// embeddings start N(0, 0.02²).
const embeddingStd = 0.02

// tinyTextEncoder is the tiny pipeline's CLIPTextModel: 2 layers, 64 wide.
var tinyTextEncoder = textEncoderSize{hidden: 64, intermediate: 128, heads: 4, layers: 2}

// InitTiny writes a complete Stable Diffusion pipeline with random weights
// into dir, in the diffusers layout (diffusers' StableDiffusionPipeline and
// golcm's Load both read it): the "tiny" UNet preset, a small 8× VAE, a
// 2-layer 64-wide CLIP text encoder, golcm's own small BPE tokenizer and
// SD 1.5's scheduler config. Weights come from nn.RandomWeights with seeds
// derived from seed, so one seed always gives byte-identical files. dir may
// be new, empty, or an earlier pipeline (which is overwritten); any other
// non-empty folder is refused.
func InitTiny(dir string, seed uint64) error {
	return randomPipeline{name: "tiny", unetPreset: "tiny", vae: tinyVAEConfig, encoder: tinyTextEncoder}.write(dir, seed)
}

// textEncoderSize is the shape of a random CLIPTextModel; its width is the
// UNet's cross_attention_dim.
type textEncoderSize struct {
	hidden, intermediate, heads, layers int
}

// randomPipeline names the architectures of one randomly initialised
// StableDiffusionPipeline that init-model writes.
type randomPipeline struct {
	name       string         // the -arch name, for errors
	unetPreset string         // a unet.Preset name
	vae        map[string]any // the AutoencoderKL config.json
	encoder    textEncoderSize
}

// write writes the pipeline into dir (see InitTiny for the layout and the
// rules on dir).
func (p randomPipeline) write(dir string, seed uint64) error {
	if err := checkWritable(dir); err != nil {
		return err
	}
	tok, err := tinyTokenizer()
	if err != nil {
		return err
	}
	if err := tok.WriteDir(filepath.Join(dir, "tokenizer")); err != nil {
		return fmt.Errorf("init %s %s: %w", p.name, dir, err)
	}

	// Text encoder: CLIPTextModel sized to the tokenizer.
	encConfig := map[string]any{
		"architectures":           []string{clip.TextModel},
		"attention_dropout":       0.0,
		"bos_token_id":            tok.BOS,
		"dropout":                 0.0,
		"eos_token_id":            tok.EOS,
		"hidden_act":              "quick_gelu",
		"hidden_size":             p.encoder.hidden,
		"initializer_factor":      1.0,
		"initializer_range":       embeddingStd,
		"intermediate_size":       p.encoder.intermediate,
		"layer_norm_eps":          1e-5,
		"max_position_embeddings": tok.MaxLength,
		"model_type":              "clip_text_model",
		"num_attention_heads":     p.encoder.heads,
		"num_hidden_layers":       p.encoder.layers,
		"pad_token_id":            tok.Pad,
		"projection_dim":          p.encoder.hidden,
		"torch_dtype":             "float32",
		"transformers_version":    "4.35.0",
		"vocab_size":              tok.VocabSize,
	}
	encDir := filepath.Join(dir, "text_encoder")
	raw, err := writeConfig(encDir, "config.json", encConfig)
	if err != nil {
		return err
	}
	encCfg, err := clip.ParseConfig(raw, filepath.Join(encDir, "config.json"))
	if err != nil {
		return err
	}
	w := nn.RandomWeights(encCfg.ParamShapes(), componentSeed(seed, "text_encoder"), embeddingStd)
	if err := nn.WriteWeights(filepath.Join(encDir, "model.safetensors"), w, "F32"); err != nil {
		return err
	}

	// UNet: the preset, whose cross_attention_dim is the encoder's width.
	_, presetRaw, err := unet.Preset(p.unetPreset)
	if err != nil {
		return err
	}
	var unetConfig map[string]any
	if err := json.Unmarshal(presetRaw, &unetConfig); err != nil {
		return fmt.Errorf("init %s: unet preset: %w", p.name, err)
	}
	if cad, _ := unetConfig["cross_attention_dim"].(float64); int(cad) != p.encoder.hidden {
		return fmt.Errorf("init %s: unet preset %s has cross_attention_dim %v, the text encoder is %d wide", p.name, p.unetPreset, unetConfig["cross_attention_dim"], p.encoder.hidden)
	}
	unetConfig["_class_name"] = "UNet2DConditionModel"
	unetConfig["_diffusers_version"] = diffusersVersion
	unetConfig["in_channels"] = p.vae["latent_channels"]
	unetConfig["out_channels"] = p.vae["latent_channels"]
	unetRaw, err := json.Marshal(unetConfig)
	if err != nil {
		return fmt.Errorf("init %s: unet config: %w", p.name, err)
	}
	unetDir := filepath.Join(dir, "unet")
	unetCfg, err := unet.ParseConfig(unetRaw, filepath.Join(unetDir, "config.json"))
	if err != nil {
		return err
	}
	m := &unet.Model{
		Config:    unetCfg,
		Weights:   nn.RandomWeights(unetCfg.ParamShapes(), componentSeed(seed, "unet"), embeddingStd),
		RawConfig: unetRaw,
	}
	if err := m.Save(unetDir); err != nil {
		return fmt.Errorf("init %s: %w", p.name, err)
	}

	vaeDir := filepath.Join(dir, "vae")
	if raw, err = writeConfig(vaeDir, "config.json", p.vae); err != nil {
		return err
	}
	vaeCfg, err := vae.ParseConfig(raw, filepath.Join(vaeDir, "config.json"))
	if err != nil {
		return err
	}
	w = nn.RandomWeights(vaeCfg.ParamShapes(), componentSeed(seed, "vae"), embeddingStd)
	if err := nn.WriteWeights(filepath.Join(vaeDir, "diffusion_pytorch_model.safetensors"), w, "F32"); err != nil {
		return err
	}

	if _, err := writeConfig(filepath.Join(dir, "scheduler"), "scheduler_config.json", tinySchedulerConfig); err != nil {
		return err
	}
	// model_index.json last: a folder that has it is complete.
	_, err = writeConfig(dir, "model_index.json", tinyModelIndex)
	return err
}

// componentSeed gives each component its own random stream from one seed.
func componentSeed(seed uint64, component string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(component))
	return seed ^ h.Sum64()
}

// writeConfig writes v as indented JSON (keys sorted, so the bytes are
// always the same) to dir/name and returns the bytes.
func writeConfig(dir, name string, v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("init-model: %s: %w", name, err)
	}
	data = append(data, '\n')
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("init-model: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		return nil, fmt.Errorf("init-model: %w", err)
	}
	return data, nil
}

// checkWritable accepts a missing or empty folder, or one holding a
// pipeline (model_index.json) to overwrite.
func checkWritable(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("init-model: %w", err)
	}
	if len(entries) == 0 || fileExists(filepath.Join(dir, "model_index.json")) {
		return nil
	}
	return fmt.Errorf("init-model: %s is not empty and holds no model_index.json; refusing to write a pipeline into it (remove it or pick another folder)", dir)
}
