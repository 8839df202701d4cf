package lora

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultTargets are the module-name suffixes the LCM-LoRA scripts adapt
// (train_lcm_distill_lora_*.py with no --lora_target_modules): every attention
// projection, transformer proj_in/proj_out, feed-forward linear, resnet conv,
// shortcut, resampling conv and resnet time projection. conv_in, conv_out,
// the time and added-condition embeddings and the norms stay frozen.
var DefaultTargets = []string{
	"to_q", "to_k", "to_v", "to_out.0",
	"proj_in", "proj_out",
	"ff.net.0.proj", "ff.net.2",
	"conv1", "conv2", "conv_shortcut",
	"downsamplers.0.conv", "upsamplers.0.conv",
	"time_emb_proj",
}

// Config is a LoRA's shape, as PEFT's LoraConfig(r, lora_alpha,
// lora_dropout, target_modules) with init_lora_weights=True and bias="none".
type Config struct {
	Rank    int      // r: the inner width of every adapter (LCM-LoRA: 64)
	Alpha   float64  // lora_alpha: the update is scaled by Alpha/Rank (LCM-LoRA: 64)
	Dropout float64  // lora_dropout on the adapter input while training, in [0, 1)
	Targets []string // module-name suffixes to adapt; empty means DefaultTargets
}

// targets is Targets, or DefaultTargets when empty.
func (c Config) targets() []string {
	if len(c.Targets) == 0 {
		return DefaultTargets
	}
	return c.Targets
}

// Validate checks the values PEFT would reject or golcm cannot use.
func (c Config) Validate() error {
	switch {
	case c.Rank <= 0:
		return fmt.Errorf("lora: rank %d, want > 0", c.Rank)
	case c.Alpha <= 0:
		return fmt.Errorf("lora: alpha %v, want > 0", c.Alpha)
	case c.Dropout < 0 || c.Dropout >= 1:
		return fmt.Errorf("lora: dropout %v, want 0 <= dropout < 1", c.Dropout)
	}
	for _, t := range c.Targets {
		if t == "" || strings.HasPrefix(t, ".") || strings.HasSuffix(t, ".") {
			return fmt.Errorf("lora: target %q is not a module name suffix", t)
		}
	}
	return nil
}

// Module is one adapted layer.
type Module struct {
	Name    string  // diffusers module path: "down_blocks.0.resnets.0.conv1"
	In, Out int     // the layer's input and output features (channels)
	KH, KW  int     // the convolution kernel; 0, 0 for a Linear layer
	Rank    int     // r of this adapter
	Alpha   float64 // alpha of this adapter; the update is scaled by Alpha/Rank
}

// Conv reports whether the adapted layer is a Conv2d.
func (m Module) Conv() bool { return m.KH > 0 }

// Scale is the factor the low-rank update is multiplied by: alpha / r.
func (m Module) Scale() float64 { return m.Alpha / float64(m.Rank) }

// AShape is the shape of lora_A.weight: [r, in] or [r, in, kh, kw].
func (m Module) AShape() []int {
	if m.Conv() {
		return []int{m.Rank, m.In, m.KH, m.KW}
	}
	return []int{m.Rank, m.In}
}

// BShape is the shape of lora_B.weight: [out, r] or [out, r, 1, 1].
func (m Module) BShape() []int {
	if m.Conv() {
		return []int{m.Out, m.Rank, 1, 1}
	}
	return []int{m.Out, m.Rank}
}

// NumParams is the number of trainable values of the adapter.
func (m Module) NumParams() int { return size(m.AShape()) + size(m.BShape()) }

// moduleOf describes the layer whose weight has shape dims, or reports that
// it is neither a Linear ([out, in]) nor a Conv2d ([out, in, kh, kw]).
func moduleOf(name string, dims []int, rank int, alpha float64) (Module, bool) {
	m := Module{Name: name, Rank: rank, Alpha: alpha}
	switch len(dims) {
	case 2:
		m.Out, m.In = dims[0], dims[1]
	case 4:
		m.Out, m.In, m.KH, m.KW = dims[0], dims[1], dims[2], dims[3]
	default:
		return m, false
	}
	return m, true
}

// Modules lists the layers of a base model that cfg adapts, sorted by name.
// baseShapes is the model's weight schema (unet.Config.ParamShapes). A target
// that matches no layer, or matches a layer that is neither Linear nor
// Conv2d, is an error (PEFT only fails when nothing matches; a target that
// silently adapts nothing is more likely a typo).
func Modules(baseShapes map[string][]int, cfg Config) ([]Module, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targets := cfg.targets()
	hits := make([]int, len(targets))
	var mods []Module
	var unsupported []string
	for _, name := range sortedKeys(baseShapes) {
		module, ok := strings.CutSuffix(name, ".weight")
		if !ok {
			continue
		}
		matched := false
		for i, t := range targets {
			if module == t || strings.HasSuffix(module, "."+t) {
				hits[i]++
				matched = true
			}
		}
		if !matched {
			continue
		}
		m, ok := moduleOf(module, baseShapes[name], cfg.Rank, cfg.Alpha)
		if !ok {
			unsupported = append(unsupported, fmt.Sprintf("%s (weight %v)", module, baseShapes[name]))
			continue
		}
		mods = append(mods, m)
	}
	var unmatched []string
	for i, t := range targets {
		if hits[i] == 0 {
			unmatched = append(unmatched, fmt.Sprintf("%q", t))
		}
	}
	if len(unmatched) > 0 {
		return nil, fmt.Errorf("lora: targets %s match no module of the base model", strings.Join(unmatched, ", "))
	}
	if len(unsupported) > 0 {
		return nil, fmt.Errorf("lora: targets match %d modules that are neither Linear nor Conv2d: %s",
			len(unsupported), strings.Join(unsupported, ", "))
	}
	return mods, nil
}

// CountTrainable is the number of LoRA parameters cfg adds to a base model,
// computed from shapes alone (New allocates them).
func CountTrainable(baseShapes map[string][]int, cfg Config) (int, error) {
	mods, err := Modules(baseShapes, cfg)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range mods {
		n += m.NumParams()
	}
	return n, nil
}

func size(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
