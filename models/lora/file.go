package lora

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/safetensors"
)

// FileName is the file diffusers' load_lora_weights looks for in a folder.
const FileName = "pytorch_lora_weights.safetensors"

// metadataKey is the safetensors header entry in which diffusers (>= 0.35,
// save_lora_weights(unet_lora_adapter_metadata=...)) stores the LoraConfig,
// as JSON with keys prefixed by the component ("unet.r", "unet.lora_alpha").
const metadataKey = "lora_adapter_metadata"

// Write saves the adapters as one safetensors file in format f, tensors in
// dtype (F32, F16 or BF16; kohya alphas are always F32 scalars), atomically.
//
// How the scale alpha/r survives a reload differs by format:
//   - FormatKohya writes an ".alpha" scalar for every module; every loader
//     (diffusers via its kohya conversion, A1111, ComfyUI, golcm) applies it.
//   - The diffusers formats have no place for alphas among the tensors:
//     diffusers' load_lora_weights rejects any key without "lora" in it
//     ("Invalid LoRA checkpoint."), and diffusers before 0.35 ignores the
//     header, assuming alpha = r (scale 1). Write therefore folds each
//     module's alpha/r into its B, so a loader that assumes scale 1 gets
//     W + (alpha/r)·B·A. Only when ranks differ between modules (which
//     diffusers infers from the shapes, taking the first rank as everyone's
//     alpha) does the header carry the LoraConfig, with every alpha equal to
//     its rank, under "lora_adapter_metadata" as diffusers >= 0.35 reads it.
func (a *Adapters) Write(path string, f Format, dtype safetensors.DType) error {
	var list []*safetensors.Tensor
	add := func(key string, dims []int, data []float32, dt safetensors.DType) error {
		t, err := safetensors.FromFloat32As(key, dt, dims, data)
		if err != nil {
			return err
		}
		list = append(list, t)
		return nil
	}
	fold := f != FormatKohya
	folded := make([]Module, len(a.Modules))
	for i, m := range a.Modules {
		for _, p := range []part{partA, partB} {
			name := ParamA(m.Name)
			if p == partB {
				name = ParamB(m.Name)
			}
			data, dims, err := a.Weights.Float32(name)
			if err != nil {
				return fmt.Errorf("lora write %s: %w", path, err)
			}
			if p == partB && fold && m.Scale() != 1 {
				data = slices.Clone(data)
				for j, v := range data {
					data[j] = float32(float64(v) * m.Scale())
				}
			}
			if err := add(fileKey(f, m.Name, p), dims, data, dtype); err != nil {
				return fmt.Errorf("lora write %s: %w", path, err)
			}
		}
		if key := fileKey(f, m.Name, partAlpha); key != "" {
			if err := add(key, []int{}, []float32{float32(m.Alpha)}, safetensors.F32); err != nil {
				return fmt.Errorf("lora write %s: %w", path, err)
			}
		}
		folded[i] = m
		folded[i].Alpha = float64(m.Rank)
	}
	meta := map[string]string{"format": "pt"}
	if fold {
		written := &Adapters{Config: a.Config, Modules: folded}
		if written.needsConfigMetadata() {
			js, err := json.MarshalIndent(written.peftConfig(unetPrefix), "", "  ")
			if err != nil {
				return fmt.Errorf("lora write %s: %w", path, err)
			}
			meta[metadataKey] = string(js)
		}
	}
	return safetensors.WriteFile(path, list, meta)
}

// needsConfigMetadata reports whether diffusers' inference from tensor
// shapes alone (every alpha = the first module's rank) would get a scale
// wrong.
func (a *Adapters) needsConfigMetadata() bool {
	for _, m := range a.Modules {
		if m.Rank != a.Modules[0].Rank || m.Alpha != float64(m.Rank) {
			return true
		}
	}
	return false
}

// peftConfig is PEFT's LoraConfig for the adapters, its keys prefixed.
func (a *Adapters) peftConfig(prefix string) map[string]any {
	ranks, alphas := map[int]int{}, map[float64]int{}
	for _, m := range a.Modules {
		ranks[m.Rank]++
		alphas[m.Alpha]++
	}
	r, alpha := mostCommon(ranks), mostCommon(alphas)
	rankPattern, alphaPattern := map[string]int{}, map[string]float64{}
	names := make([]string, len(a.Modules))
	for i, m := range a.Modules {
		names[i] = m.Name
		if m.Rank != r {
			rankPattern[m.Name] = m.Rank
		}
		if m.Alpha != alpha {
			alphaPattern[m.Name] = m.Alpha
		}
	}
	return map[string]any{
		prefix + "r": r, prefix + "lora_alpha": alpha, prefix + "lora_dropout": a.Config.Dropout,
		prefix + "target_modules": names, prefix + "rank_pattern": rankPattern, prefix + "alpha_pattern": alphaPattern,
	}
}

// mostCommon is the key with the highest count, the smallest on ties.
func mostCommon[K int | float64](counts map[K]int) K {
	keys := slices.Sorted(maps.Keys(counts))
	best := keys[0]
	for _, k := range keys {
		if counts[k] > counts[best] {
			best = k
		}
	}
	return best
}

// Read loads a LoRA file for the base model whose weight schema is
// baseShapes (unet.Config.ParamShapes). It reads every layout Write writes
// plus PEFT's "base_model.model." names (bare, as in adapter_model.safetensors,
// or under "unet.", as the LCM-LoRA scripts' unet_lora/ file), files mixing
// "lora_A" and "lora.down" names (the SDXL LCM-LoRA script's output), and
// diffusers 0.14-0.20 attention-processor names ("….attn1.processor.to_q_lora.down.weight").
//
// Each module's alpha comes from its ".alpha" scalar; else from the
// header's lora_adapter_metadata or, for adapter_model.safetensors, the
// adapter_config.json beside it (lora_alpha and alpha_pattern); else it is
// the module's rank, as diffusers assumes. Keys of no known layout, modules
// the UNet lacks (text-encoder LoRAs included), shapes that do not fit the
// UNet's layer and incomplete pairs give one error listing all of them.
func Read(path string, baseShapes map[string][]int) (*Adapters, error) {
	file, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	defaults, err := alphaDefaults(path, file.Metadata)
	if err != nil {
		return nil, err
	}
	type entry struct{ keys [3]string }
	found := map[string]*entry{}
	var missing, unexpected, wrong []string
	parser := newKeyParser(baseShapes)
	for _, key := range file.Names() {
		module, p, err := parser.parse(key)
		if err != nil {
			unexpected = append(unexpected, err.Error())
			continue
		}
		e := found[module]
		if e == nil {
			e = &entry{}
			found[module] = e
		}
		if prev := e.keys[p]; prev != "" {
			unexpected = append(unexpected, fmt.Sprintf("%s: %s %s again (first %s)", key, module, p, prev))
			continue
		}
		e.keys[p] = key
	}
	if len(found) == 0 && len(unexpected) == 0 {
		return nil, fmt.Errorf("lora file %s: no tensors", path)
	}
	var mods []Module
	w := nn.NewWeights()
	for _, module := range sortedKeys(found) {
		e := found[module]
		dims, ok := baseShapes[module+".weight"]
		m, linearOrConv := moduleOf(module, dims, 0, 0)
		switch {
		case !ok:
			unexpected = append(unexpected, fmt.Sprintf("%s: the UNet has no module %s", firstKey(e.keys[:]), module))
			continue
		case !linearOrConv:
			unexpected = append(unexpected, fmt.Sprintf("%s: %s is neither Linear nor Conv2d (weight %v)", firstKey(e.keys[:]), module, dims))
			continue
		case e.keys[partA] == "" || e.keys[partB] == "":
			missing = append(missing, fmt.Sprintf("%s of %s (have %s)", partMissing(e.keys), module, firstKey(e.keys[:])))
			continue
		}
		A, B := file.Tensors[e.keys[partA]], file.Tensors[e.keys[partB]]
		if len(A.Shape) > 0 {
			m.Rank = A.Shape[0]
		}
		if m.Rank <= 0 || !slices.Equal(A.Shape, m.AShape()) || !slices.Equal(B.Shape, m.BShape()) {
			wrong = append(wrong, fmt.Sprintf("%s is %v and %s is %v, want %v and %v for the UNet's %v weight",
				e.keys[partA], A.Shape, e.keys[partB], B.Shape, m.AShape(), m.BShape(), dims))
			continue
		}
		m.Alpha = defaults.alpha(module, m.Rank)
		if key := e.keys[partAlpha]; key != "" {
			t := file.Tensors[key]
			v, err := t.Float32()
			if err != nil || len(v) != 1 {
				wrong = append(wrong, fmt.Sprintf("%s is %s %v, want one float", key, t.DType, t.Shape))
				continue
			}
			m.Alpha = float64(v[0])
		}
		for _, p := range []part{partA, partB} {
			t := file.Tensors[e.keys[p]]
			data, err := t.Float32()
			if err != nil {
				wrong = append(wrong, fmt.Sprintf("%s: %v", e.keys[p], err))
				continue
			}
			name := ParamA(module)
			if p == partB {
				name = ParamB(module)
			}
			w.SetFloat32(name, data, t.Shape...)
		}
		mods = append(mods, m)
	}
	if err := nn.NameErrors("lora file "+path, missing, unexpected, wrong); err != nil {
		return nil, err
	}
	return newAdapters(configOf(mods), mods, w), nil
}

// configOf summarises loaded modules: the most common rank and alpha, and
// the module names as targets.
func configOf(mods []Module) Config {
	ranks, alphas := map[int]int{}, map[float64]int{}
	names := make([]string, len(mods))
	for i, m := range mods {
		ranks[m.Rank]++
		alphas[m.Alpha]++
		names[i] = m.Name
	}
	return Config{Rank: mostCommon(ranks), Alpha: mostCommon(alphas), Targets: names}
}

func firstKey(keys []string) string {
	for _, k := range keys {
		if k != "" {
			return k
		}
	}
	return ""
}

func partMissing(keys [3]string) string {
	if keys[partA] == "" && keys[partB] == "" {
		return "A (down) and B (up)"
	}
	if keys[partA] == "" {
		return partA.String()
	}
	return partB.String()
}

// peftAlphas are the alphas a PEFT LoraConfig gives modules: lora_alpha,
// overridden by alpha_pattern entries matched by module-name suffix.
type peftAlphas struct {
	alphaSet bool
	lora     float64
	pattern  map[string]float64
}

// alpha is a module's alpha under the config; rank when nothing says.
func (d peftAlphas) alpha(module string, rank int) float64 {
	best := ""
	for key := range d.pattern {
		k := strings.TrimPrefix(key, "^")
		if (module == k || strings.HasSuffix(module, "."+k)) && len(k) > len(best) {
			best = key
		}
	}
	if best != "" {
		return d.pattern[best]
	}
	if d.alphaSet {
		return d.lora
	}
	return float64(rank)
}

// alphaDefaults reads the LoraConfig stored with a LoRA file: the header's
// lora_adapter_metadata (unet-prefixed or bare keys), or PEFT's
// adapter_config.json beside an adapter_model.safetensors.
func alphaDefaults(path string, header map[string]string) (peftAlphas, error) {
	raw := map[string]json.RawMessage{}
	source := ""
	if js, ok := header[metadataKey]; ok {
		source = path + " header " + metadataKey
		all := map[string]json.RawMessage{}
		if err := json.Unmarshal([]byte(js), &all); err != nil {
			return peftAlphas{}, fmt.Errorf("lora file %s: %w", source, err)
		}
		for k, v := range all {
			if rest, ok := strings.CutPrefix(k, unetPrefix); ok {
				raw[rest] = v
			} else if !strings.Contains(k, ".") {
				raw[k] = v
			}
		}
	} else if filepath.Base(path) == "adapter_model.safetensors" {
		source = filepath.Join(filepath.Dir(path), "adapter_config.json")
		js, err := os.ReadFile(source)
		if errors.Is(err, os.ErrNotExist) {
			return peftAlphas{}, nil
		}
		if err != nil {
			return peftAlphas{}, fmt.Errorf("lora: %w", err)
		}
		if err := json.Unmarshal(js, &raw); err != nil {
			return peftAlphas{}, fmt.Errorf("lora %s: %w", source, err)
		}
	}
	var d peftAlphas
	if v, ok := raw["lora_alpha"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &d.lora); err != nil {
			return d, fmt.Errorf("lora %s: lora_alpha: %w", source, err)
		}
		d.alphaSet = true
	}
	if v, ok := raw["alpha_pattern"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &d.pattern); err != nil {
			return d, fmt.Errorf("lora %s: alpha_pattern: %w", source, err)
		}
	}
	return d, nil
}
