package vae

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"

	"github.com/golcm/golcm/models/hub"
	"github.com/golcm/golcm/models/nn"
)

// Model is a VAE's config and weights on the host.
type Model struct {
	Config  *Config
	Weights *nn.Weights
}

// Load reads a diffusers vae/ folder: config.json and its weight file
// (variant "fp16" picks the .fp16. files; "" the full-precision ones). Any
// AutoencoderKL folder works, so a separately published VAE (SD-XL's
// fp16-fix, sd-vae-ft-mse) can stand in for a pipeline's own.
func Load(dir, variant string) (*Model, error) { return LoadOn(nil, dir, variant) }

// LoadOn is Load reading the weights straight into b's buffers where b has
// shared buffers (nn.ReadWeightsOn).
func LoadOn(b compute.Backend, dir, variant string) (*Model, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	w, wpath, err := nn.ReadComponentOn(b, dir, variant)
	if err != nil {
		return nil, err
	}
	if err := renameLegacyAttention(w); err != nil {
		return nil, fmt.Errorf("%s: %w", wpath, err)
	}
	m := &Model{Config: cfg, Weights: w}
	if err := m.CheckWeights(); err != nil {
		return nil, fmt.Errorf("%s: %w", wpath, err)
	}
	return m, nil
}

// legacyAttention maps the mid-block attention names of checkpoints written
// before diffusers 0.14 to today's, as diffusers'
// _convert_deprecated_attention_blocks does when it loads them.
var legacyAttention = map[string]string{
	"query":     "to_q",
	"key":       "to_k",
	"value":     "to_v",
	"proj_attn": "to_out.0",
}

// renameLegacyAttention renames legacy attention weights in place. A 1×1
// conv weight [C, C, 1, 1] (as the original LDM checkpoints stored them)
// becomes the Linear [C, C] it is equivalent to.
func renameLegacyAttention(w *nn.Weights) error {
	for _, name := range w.Names() {
		if !strings.Contains(name, "mid_block.attentions.") {
			continue
		}
		parts := strings.Split(name, ".")
		if len(parts) < 2 {
			continue
		}
		layer := parts[len(parts)-2]
		renamed, ok := legacyAttention[layer]
		if !ok {
			continue
		}
		parts[len(parts)-2] = renamed
		t, _ := w.Get(name)
		data, dims, err := nn.TensorFloat32(t)
		if err != nil {
			return fmt.Errorf("weight %q: %w", name, err)
		}
		if len(dims) == 4 && dims[2] == 1 && dims[3] == 1 {
			dims = dims[:2]
		}
		w.Delete(name)
		w.SetFloat32(strings.Join(parts, "."), data, dims...)
	}
	return nil
}

// LoadConfig reads only the folder's config.json: a pipeline that needs the architecture but not
// the weights (training from a latent cache) reads the weights later with Load.
func LoadConfig(dir string) (*Config, error) {
	return hub.ReadModelConfig[Config]("vae", filepath.Join(dir, "config.json"), defaultConfig())
}

// CheckWeights compares the weight names and shapes with what the config
// needs, listing every missing, unexpected and mis-shaped weight.
func (m *Model) CheckWeights() error {
	return nn.CheckSchema("vae", m.Config.ParamShapes(), m.Weights)
}

// EncoderWeights are the weights Encode reads (encoder.*, quant_conv.*),
// sharing the tensors of m.Weights: a program that only encodes is compiled
// over these, since nn.Compile rejects weights a graph does not use.
func (m *Model) EncoderWeights() *nn.Weights { return m.part("encoder.", "quant_conv.") }

// DecoderWeights are the weights Decode reads (post_quant_conv.*, decoder.*),
// sharing the tensors of m.Weights.
func (m *Model) DecoderWeights() *nn.Weights { return m.part("post_quant_conv.", "decoder.") }

func (m *Model) part(prefixes ...string) *nn.Weights {
	w := nn.NewWeights()
	for _, p := range prefixes {
		for _, name := range m.Weights.WithPrefix(p) {
			t, _ := m.Weights.Get(name)
			w.Set(name, t)
		}
	}
	return w
}
