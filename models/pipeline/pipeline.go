// Package pipeline is a diffusers pipeline folder as golcm uses it: the
// model_index.json of a Stable Diffusion (SD 1.x/2.x, LCM) or SD-XL pipeline
// and the components it names — unet/, vae/ (or a separately published VAE
// such as SD-XL's fp16-fix), text_encoder/ (+ text_encoder_2/), tokenizer/
// (+ tokenizer_2/) and scheduler/scheduler_config.json — loaded and checked
// against each other, so a mismatch is reported when the folder is opened
// rather than as a shape error deep inside a graph.
//
// InitTiny writes a complete, randomly initialised SD-style pipeline in the
// same layout (small enough to train and sample on a CPU), which diffusers'
// StableDiffusionPipeline.from_pretrained loads as well; InitFashion writes
// the one to train from scratch on Fashion-MNIST at 32×32 (fashion.go).
//
// The scheduler config is kept as a path, not parsed: package lcm owns the
// scheduler and imports this package for its sampler. Depends on models/hub,
// models/unet, models/vae, models/clip, models/tokenizer and models/nn.
package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/compute"

	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/tokenizer"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/models/vae"
)

// Kind is the pipeline family, which decides how prompts condition the UNet.
type Kind string

// The pipeline families golcm runs.
const (
	// SD is Stable Diffusion 1.x/2.x (and LCMs distilled from it): one text
	// encoder whose last hidden state is the UNet's context.
	SD Kind = "sd"
	// SDXL is Stable Diffusion XL: two text encoders whose penultimate
	// states are concatenated, plus encoder 2's pooled text_embeds and the
	// size/crop time_ids the UNet's text_time embedding takes.
	SDXL Kind = "sdxl"
)

// Pipeline is a loaded diffusers pipeline folder.
type Pipeline struct {
	Dir   string          // the resolved folder
	Index *hub.ModelIndex // its model_index.json

	UNet   *unet.Model
	VAE    *vae.Model
	VAEDir string // the folder the VAE came from (vae/ or the override)
	// TextEncoders are text_encoder, then for SD-XL text_encoder_2 (a
	// CLIPTextModelWithProjection); Tokenizers pair with them one to one.
	TextEncoders []*clip.Model
	Tokenizers   []*tokenizer.Tokenizer
	// SchedulerConfig is scheduler/scheduler_config.json; read it with
	// lcm.ReadSchedulerConfig (an LCMScheduler takes a teacher's PNDM, DDIM
	// or Euler config as diffusers' from_config does).
	SchedulerConfig string
	// ForceZerosForEmptyPrompt is SD-XL's force_zeros_for_empty_prompt
	// (model_index.json, default true): an empty negative prompt gives zero
	// embeddings instead of the encoding of "".
	ForceZerosForEmptyPrompt bool

	// Where the encoders' files are (EncoderFiles, LoadEncoders).
	vaeVariant                     string
	textEncoderDirs, tokenizerDirs []string
	variant                        string
}

// Kind is SDXL when the UNet takes text_time added conditions and there are
// two text encoders (Load guarantees both or neither), else SD.
func (p *Pipeline) Kind() Kind {
	if p.UNet.Config.TextTime() && len(p.TextEncoders) == 2 {
		return SDXL
	}
	return SD
}

// VAEScaleFactor is how much the VAE shrinks an image (8 for SD and SD-XL),
// diffusers' vae_scale_factor.
func (p *Pipeline) VAEScaleFactor() int { return p.VAE.Config.DownsampleFactor() }

// SizeMultiple is what image sides must be a multiple of: the VAE factor
// times the UNet's own downsampling (golcm's UNet, unlike diffusers', does
// not pad odd latent sizes).
func (p *Pipeline) SizeMultiple() int {
	return p.VAEScaleFactor() * p.UNet.Config.DownsampleFactor()
}

// DefaultSize is the image size the pipeline generates when none is asked
// for: unet sample_size × vae_scale_factor (512 for SD 1.5, 1024 for SD-XL).
func (p *Pipeline) DefaultSize() (height, width int, err error) {
	h, w, err := sampleSize(p.UNet.Config.SampleSize)
	if err != nil {
		return 0, 0, fmt.Errorf("pipeline %s: unet sample_size: %w", p.Dir, err)
	}
	f := p.VAEScaleFactor()
	return h * f, w * f, nil
}

// sampleSize reads a UNet's sample_size: an int or [height, width].
func sampleSize(raw json.RawMessage) (h, w int, err error) {
	var one int
	if err := json.Unmarshal(raw, &one); err == nil && one > 0 {
		return one, one, nil
	}
	var pair []int
	if err := json.Unmarshal(raw, &pair); err == nil && len(pair) == 2 && pair[0] > 0 && pair[1] > 0 {
		return pair[0], pair[1], nil
	}
	return 0, 0, fmt.Errorf("value %q is neither a positive int nor [height, width]", strings.TrimSpace(string(raw)))
}

// Describe is a one-line summary for logs.
func (p *Pipeline) Describe() string {
	guidance := "no guidance embedding"
	if d := p.UNet.Config.TimeCondProjDim; d != nil {
		guidance = fmt.Sprintf("guidance embedding %d", *d)
	}
	return fmt.Sprintf("%s pipeline %s (%s): unet %v (%s, %.3gM params), vae ×%d, %d text encoder(s)",
		p.Kind(), p.Dir, p.Index.ClassName, p.UNet.Config.BlockOutChannels, guidance,
		float64(p.UNet.Weights.NumParameters())/1e6, p.VAEScaleFactor(), len(p.TextEncoders))
}

// Load opens a pipeline: nameOrPath is a local folder or a Hugging Face model
// id found in the local cache (hub.Resolve; nothing is downloaded).
// variant ("fp16" or "") picks the weight files of every component.
// vaeOverride, when set, is a folder or model id holding an AutoencoderKL to
// use instead of the pipeline's vae/ (an AutoencoderKL folder itself, or a
// pipeline folder with a vae/ inside); its full-precision weights are read,
// since published standalone VAEs (sdxl-vae-fp16-fix) have no variants.
func Load(nameOrPath, revision, variant, vaeOverride string) (*Pipeline, error) {
	return load(nil, nameOrPath, revision, variant, vaeOverride, true)
}

// LoadOn is Load reading every component's weights straight into b's
// buffers where b has shared buffers (the Go backend; nn.ReadWeightsOn), so
// that they are held once, not as host copies and buffers.
func LoadOn(b compute.Backend, nameOrPath, revision, variant, vaeOverride string) (*Pipeline, error) {
	return load(b, nameOrPath, revision, variant, vaeOverride, true)
}

// LoadWithoutEncoders is Load without reading the weights of the VAE and
// the text encoders (their configs and the tokenizers are read and checked,
// VAE.Weights and TextEncoders[i].Weights are nil): training from a latent
// cache needs only the UNet. LoadEncoders reads them when validation needs
// them.
func LoadWithoutEncoders(nameOrPath, revision, variant, vaeOverride string) (*Pipeline, error) {
	return load(nil, nameOrPath, revision, variant, vaeOverride, false)
}

// EncodersLoaded reports whether the VAE's and text encoders' weights are
// in memory.
func (p *Pipeline) EncodersLoaded() bool { return p.VAE.Weights != nil }

// LoadEncoders reads the VAE's and the text encoders' weights of a pipeline
// opened with LoadWithoutEncoders (a no-op when they are loaded).
func (p *Pipeline) LoadEncoders() error {
	if p.EncodersLoaded() {
		return nil
	}
	m, err := vae.Load(p.VAEDir, p.vaeVariant)
	if err != nil {
		return fmt.Errorf("pipeline %s: %w", p.Dir, err)
	}
	encs := make([]*clip.Model, len(p.textEncoderDirs))
	for i, dir := range p.textEncoderDirs {
		if encs[i], err = clip.Load(dir, p.variant); err != nil {
			return fmt.Errorf("pipeline %s: %w", p.Dir, err)
		}
	}
	p.VAE, p.TextEncoders = m, encs
	return nil
}

// EncoderFiles lists the files that decide what the frozen encoders
// compute: the VAE's config.json and weight files, and per text encoder its
// config.json, weight files and its tokenizer's files (a latent cache's
// identity).
func (p *Pipeline) EncoderFiles() (vaeFiles []string, text [][]string, err error) {
	if vaeFiles, err = componentFiles(p.VAEDir, p.vaeVariant); err != nil {
		return nil, nil, err
	}
	for i, dir := range p.textEncoderDirs {
		files, err := componentFiles(dir, p.variant)
		if err != nil {
			return nil, nil, err
		}
		entries, err := os.ReadDir(p.tokenizerDirs[i])
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline %s: %w", p.Dir, err)
		}
		for _, e := range entries { // sorted by name
			if !e.IsDir() {
				files = append(files, filepath.Join(p.tokenizerDirs[i], e.Name()))
			}
		}
		text = append(text, files)
	}
	return vaeFiles, text, nil
}

// componentFiles is a component folder's config.json and weight file, and
// the shards a sharded checkpoint's index names.
func componentFiles(dir, variant string) ([]string, error) {
	w, err := hub.WeightFile(dir, variant)
	if err != nil {
		return nil, err
	}
	files := []string{filepath.Join(dir, "config.json"), w}
	if strings.HasSuffix(w, ".json") {
		shards, err := hub.IndexShards(w)
		if err != nil {
			return nil, err
		}
		for _, f := range shards {
			files = append(files, filepath.Join(filepath.Dir(w), f))
		}
	}
	return files, nil
}

func load(b compute.Backend, nameOrPath, revision, variant, vaeOverride string, encoders bool) (*Pipeline, error) {
	dir, err := hub.Resolve(nameOrPath, revision)
	if err != nil {
		return nil, err
	}
	index, err := hub.ReadModelIndex(dir)
	if err != nil {
		return nil, err
	}
	if err := checkClasses(index); err != nil {
		return nil, err
	}
	p := &Pipeline{Dir: dir, Index: index, ForceZerosForEmptyPrompt: true, variant: variant}
	if raw, ok := index.Options["force_zeros_for_empty_prompt"]; ok {
		if err := json.Unmarshal(raw, &p.ForceZerosForEmptyPrompt); err != nil {
			return nil, fmt.Errorf("pipeline %s: force_zeros_for_empty_prompt: %w", index.Path, err)
		}
	}
	component := func(name string) (string, error) {
		if _, listed := index.Components[name]; !listed {
			return "", fmt.Errorf("pipeline %s: model_index.json has no %q component (components: %s)",
				dir, name, strings.Join(index.ComponentNames(), ", "))
		}
		return hub.ComponentDir(dir, name)
	}

	unetDir, err := component("unet")
	if err != nil {
		return nil, err
	}
	if p.UNet, err = unet.LoadOn(b, unetDir, variant); err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", dir, err)
	}

	loadVAE := func(dir, variant string) (*vae.Model, error) {
		if !encoders {
			cfg, err := vae.LoadConfig(dir)
			return &vae.Model{Config: cfg}, err
		}
		return vae.LoadOn(b, dir, variant)
	}
	if vaeOverride != "" {
		if p.VAEDir, err = resolveVAE(vaeOverride); err != nil {
			return nil, err
		}
		if p.VAE, err = loadVAE(p.VAEDir, ""); err != nil {
			return nil, fmt.Errorf("vae override %s: %w", vaeOverride, err)
		}
	} else {
		if p.VAEDir, err = component("vae"); err != nil {
			return nil, err
		}
		p.vaeVariant = variant
		if p.VAE, err = loadVAE(p.VAEDir, variant); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", dir, err)
		}
	}

	pairs := [][2]string{{"text_encoder", "tokenizer"}}
	_, hasEnc2 := index.Components["text_encoder_2"]
	_, hasTok2 := index.Components["tokenizer_2"]
	switch {
	case hasEnc2 && hasTok2:
		pairs = append(pairs, [2]string{"text_encoder_2", "tokenizer_2"})
	case hasEnc2 != hasTok2:
		return nil, fmt.Errorf("pipeline %s: model_index.json lists only one of text_encoder_2 and tokenizer_2; SD-XL needs both", dir)
	}
	for _, pair := range pairs {
		encDir, err := component(pair[0])
		if err != nil {
			return nil, err
		}
		enc := &clip.Model{}
		if encoders {
			enc, err = clip.LoadOn(b, encDir, variant)
		} else {
			enc.Config, err = clip.LoadConfig(encDir)
		}
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %s: %w", dir, pair[0], err)
		}
		tokDir, err := component(pair[1])
		if err != nil {
			return nil, err
		}
		tok, err := tokenizer.Load(tokDir)
		if err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", dir, err)
		}
		if tok.VocabSize > enc.Config.VocabSize {
			return nil, fmt.Errorf("pipeline %s: %s has token ids up to %d but %s's vocab_size is %d",
				dir, pair[1], tok.VocabSize-1, pair[0], enc.Config.VocabSize)
		}
		if tok.MaxLength > enc.Config.MaxPositionEmbeddings {
			return nil, fmt.Errorf("pipeline %s: %s pads to %d tokens but %s has %d positions",
				dir, pair[1], tok.MaxLength, pair[0], enc.Config.MaxPositionEmbeddings)
		}
		p.TextEncoders = append(p.TextEncoders, enc)
		p.Tokenizers = append(p.Tokenizers, tok)
		p.textEncoderDirs = append(p.textEncoderDirs, encDir)
		p.tokenizerDirs = append(p.tokenizerDirs, tokDir)
	}
	if len(p.Tokenizers) == 2 && p.Tokenizers[0].MaxLength != p.Tokenizers[1].MaxLength {
		return nil, fmt.Errorf("pipeline %s: tokenizer pads to %d tokens, tokenizer_2 to %d; SD-XL concatenates them, so they must agree",
			dir, p.Tokenizers[0].MaxLength, p.Tokenizers[1].MaxLength)
	}

	schedDir, err := component("scheduler")
	if err != nil {
		return nil, err
	}
	p.SchedulerConfig = filepath.Join(schedDir, "scheduler_config.json")
	if err := checkJSONObject(p.SchedulerConfig); err != nil {
		return nil, fmt.Errorf("pipeline %s: scheduler: %w", dir, err)
	}

	if err := p.CheckUNet(p.UNet); err != nil {
		return nil, err
	}
	return p, nil
}

// CheckUNet reports whether a UNet fits this pipeline's text encoders and
// VAE: the pipeline's own, or a distilled student to sample with them.
func (p *Pipeline) CheckUNet(m *unet.Model) error {
	cfg := m.Config
	where := fmt.Sprintf("pipeline %s: unet %s", p.Dir, cfg.Path)
	contextDim := 0
	for _, enc := range p.TextEncoders {
		contextDim += enc.Config.HiddenSize
	}
	if len(p.TextEncoders) == 2 {
		// SD-XL concatenates the penultimate states of both encoders.
		if !p.TextEncoders[1].Config.WithProjection {
			return fmt.Errorf("pipeline %s: text_encoder_2 must be a %s (SD-XL pools its projected output)", p.Dir, clip.TextModelWithProjection)
		}
		if !cfg.TextTime() {
			return fmt.Errorf("%s: two text encoders (SD-XL) but the unet has no addition_embed_type \"text_time\"", where)
		}
		if want := p.TextEncoders[1].Config.ProjectionDim; cfg.TextEmbedsDim() != want {
			return fmt.Errorf("%s: takes %d-wide text_embeds (projection_class_embeddings_input_dim - 6·addition_time_embed_dim) but text_encoder_2 projects to %d",
				where, cfg.TextEmbedsDim(), want)
		}
	} else if cfg.TextTime() {
		return fmt.Errorf("%s: addition_embed_type \"text_time\" (SD-XL) needs text_encoder_2 and tokenizer_2, which the pipeline lacks", where)
	}
	for level, d := range cfg.CrossDims {
		if d != contextDim {
			return fmt.Errorf("%s: cross_attention_dim at level %d is %d but the text encoders give %d features", where, level, d, contextDim)
		}
	}
	if lat := p.VAE.Config.LatentChannels; cfg.InChannels != lat || cfg.OutChannels != lat {
		return fmt.Errorf("%s: in/out channels %d/%d but the vae (%s) has %d latent channels",
			where, cfg.InChannels, cfg.OutChannels, p.VAEDir, lat)
	}
	return nil
}

// resolveVAE finds the AutoencoderKL folder of a -vae override: the folder
// itself when it has config.json, else its vae/ subfolder.
func resolveVAE(nameOrPath string) (string, error) {
	dir, err := hub.Resolve(nameOrPath, "")
	if err != nil {
		return "", fmt.Errorf("vae override: %w", err)
	}
	if fileExists(filepath.Join(dir, "config.json")) {
		return dir, nil
	}
	if sub := filepath.Join(dir, "vae"); fileExists(filepath.Join(sub, "config.json")) {
		return sub, nil
	}
	return "", fmt.Errorf("vae override %s: neither %s nor %s exists",
		nameOrPath, filepath.Join(dir, "config.json"), filepath.Join(dir, "vae", "config.json"))
}

// LoadUNet loads just a UNet: the unet/ folder of a pipeline, or a folder
// (or model id) that is itself a UNet, like the published full LCM students
// ("latent-consistency/lcm-sdxl"). Use it for a student sampled with another
// pipeline's text encoders and VAE (check it with Pipeline.CheckUNet).
func LoadUNet(nameOrPath, revision, variant string) (*unet.Model, error) {
	dir, err := hub.Resolve(nameOrPath, revision)
	if err != nil {
		return nil, err
	}
	if sub := filepath.Join(dir, "unet"); fileExists(filepath.Join(sub, "config.json")) {
		dir = sub
	} else if !fileExists(filepath.Join(dir, "config.json")) {
		return nil, fmt.Errorf("unet %s: neither %s nor %s exists", nameOrPath,
			filepath.Join(dir, "unet", "config.json"), filepath.Join(dir, "config.json"))
	}
	return unet.Load(dir, variant)
}

// componentClasses are the classes golcm can load for each component of a
// Stable Diffusion pipeline.
var componentClasses = map[string][]string{
	"unet":           {"UNet2DConditionModel"},
	"vae":            {"AutoencoderKL"},
	"text_encoder":   {"CLIPTextModel", "CLIPTextModelWithProjection"},
	"text_encoder_2": {"CLIPTextModelWithProjection", "CLIPTextModel"},
	"tokenizer":      {"CLIPTokenizer", "CLIPTokenizerFast"},
	"tokenizer_2":    {"CLIPTokenizer", "CLIPTokenizerFast"},
}

// checkClasses refuses a model_index.json of a pipeline family golcm does
// not run (Kandinsky, DeepFloyd IF, unconditional UNet2DModel pipelines,
// ...) before any weights are read: its components would load into the
// wrong networks. Stable Diffusion (1.x/2.x, XL, img2img and the like) and
// LCM pipelines pass.
func checkClasses(index *hub.ModelIndex) error {
	if c := index.ClassName; !(strings.HasPrefix(c, "StableDiffusion") || strings.HasPrefix(c, "LatentConsistencyModel")) || !strings.HasSuffix(c, "Pipeline") {
		return fmt.Errorf("pipeline %s: _class_name %q is not a Stable Diffusion or LCM pipeline (golcm loads StableDiffusionPipeline, StableDiffusionXLPipeline, LatentConsistencyModelPipeline and their img2img forms)",
			index.Path, c)
	}
	for name, allowed := range componentClasses {
		if c, ok := index.Components[name]; ok && c.Class != "" && !slices.Contains(allowed, c.Class) {
			return fmt.Errorf("pipeline %s: %s is a %s, want %s", index.Path, name, c.Class, strings.Join(allowed, " or "))
		}
	}
	return nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// checkJSONObject checks that path holds a JSON object.
func checkJSONObject(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
