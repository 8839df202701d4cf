package lora

import (
	"fmt"
	"strings"
)

// Format is a LoRA file's key layout.
type Format int

const (
	// FormatDiffusers is the canonical layout diffusers' load_lora_weights
	// reads: "unet.<module>.lora_A.weight" and "unet.<module>.lora_B.weight"
	// (PEFT's names under the pipeline component's name).
	FormatDiffusers Format = iota
	// FormatKohya is the kohya-ss / A1111 layout with diffusers module names:
	// "lora_unet_<module with . as _>.lora_down.weight", ".lora_up.weight"
	// and an ".alpha" scalar per module. Every LoRA loader reads it, alphas
	// included.
	FormatKohya
	// FormatDiffusersOld is diffusers' layout from before the PEFT backend:
	// "unet.<module>.lora.down.weight" and "unet.<module>.lora.up.weight".
	FormatDiffusersOld
)

func (f Format) String() string {
	switch f {
	case FormatDiffusers:
		return "diffusers"
	case FormatKohya:
		return "kohya"
	case FormatDiffusersOld:
		return "diffusers-old"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// FileNameFor is the name a run gives the file of format f: FileName for
// diffusers (the only name diffusers' load_lora_weights picks from a
// folder), the others beside it with the format in the name.
func FileNameFor(f Format) string {
	switch f {
	case FormatKohya:
		return "pytorch_lora_weights_kohya.safetensors"
	case FormatDiffusersOld:
		return "pytorch_lora_weights_diffusers_old.safetensors"
	}
	return FileName
}

// ParseFormat reads a Format's String.
func ParseFormat(s string) (Format, error) {
	for _, f := range []Format{FormatDiffusers, FormatKohya, FormatDiffusersOld} {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("lora: unknown file format %q (known: diffusers, kohya, diffusers-old)", s)
}

// part is what a key of a LoRA file holds for its module.
type part int

const (
	partA     part = iota // lora_A / lora_down / lora.down: the first, rank-reducing factor
	partB                 // lora_B / lora_up / lora.up: the second factor
	partAlpha             // the alpha scalar
)

func (p part) String() string { return [...]string{"A (down)", "B (up)", "alpha"}[p] }

const (
	unetPrefix  = "unet."
	kohyaPrefix = "lora_unet_"
	peftPrefix  = "base_model.model."
)

// fileKey is the key a module's part has in a file of format f; "" when the
// format has no such key (diffusers files keep alpha in the header).
func fileKey(f Format, module string, p part) string {
	switch f {
	case FormatKohya:
		stem := kohyaPrefix + strings.ReplaceAll(module, ".", "_")
		return stem + [...]string{".lora_down.weight", ".lora_up.weight", ".alpha"}[p]
	case FormatDiffusersOld:
		if p == partAlpha {
			return ""
		}
		return unetPrefix + module + [...]string{".lora.down.weight", ".lora.up.weight"}[p]
	default:
		if p == partAlpha {
			return ""
		}
		return unetPrefix + module + [...]string{".lora_A.weight", ".lora_B.weight"}[p]
	}
}

// suffixes maps the endings of diffusers/PEFT keys to the part they hold.
var suffixes = []struct {
	suffix string
	part   part
}{
	{".lora_A.weight", partA},
	{".lora_B.weight", partB},
	{".lora.down.weight", partA},
	{".lora.up.weight", partB},
	{".alpha", partAlpha},
}

// processorLayers maps the attention-processor LoRA names of diffusers
// 0.14-0.20 ("attn1.processor.to_q_lora.down.weight") to module names.
var processorLayers = map[string]string{
	"to_q_lora": "to_q", "to_k_lora": "to_k", "to_v_lora": "to_v", "to_out_lora": "to_out.0",
}

// keyParser turns the keys of any supported LoRA layout into (module, part).
type keyParser struct {
	// kohya maps a module name with dots replaced by underscores back to the
	// module; "" marks a name two modules share.
	kohya map[string]string
}

// newKeyParser prepares kohya name resolution for the Linear and Conv2d
// modules of a base schema: kohya names are ambiguous ("ff_net_0_proj" could
// be split at any underscore), so they are matched against the real names.
func newKeyParser(baseShapes map[string][]int) *keyParser {
	k := &keyParser{kohya: map[string]string{}}
	for name, dims := range baseShapes {
		module, ok := strings.CutSuffix(name, ".weight")
		if !ok || (len(dims) != 2 && len(dims) != 4) {
			continue
		}
		flat := strings.ReplaceAll(module, ".", "_")
		if prev, dup := k.kohya[flat]; dup && prev != module {
			k.kohya[flat] = ""
			continue
		}
		k.kohya[flat] = module
	}
	return k
}

// parse returns the module and part a key holds. It reads:
//   - kohya: lora_unet_<flat>.lora_down.weight | .lora_up.weight | .alpha
//   - PEFT / diffusers: [unet.][base_model.model.]<module>.lora_A.weight | .lora_B.weight
//   - old diffusers: [unet.]<module>.lora.down.weight | .lora.up.weight
//   - attention processors: [unet.]<attn>.processor.to_q_lora.down.weight (to_k, to_v, to_out)
//   - an alpha scalar: [unet.][base_model.model.]<module>.alpha
//
// The module is not checked against the base model here, except that kohya
// names must resolve to one of its modules.
func (k *keyParser) parse(key string) (module string, p part, err error) {
	for _, te := range []string{"lora_te_", "lora_te1_", "lora_te2_", "text_encoder.", "text_encoder_2."} {
		if strings.HasPrefix(key, te) {
			return "", 0, fmt.Errorf("%s: a text-encoder LoRA key (golcm adapts the UNet only)", key)
		}
	}
	if rest, ok := strings.CutPrefix(key, kohyaPrefix); ok {
		flat, suffix, _ := strings.Cut(rest, ".")
		switch suffix {
		case "lora_down.weight":
			p = partA
		case "lora_up.weight":
			p = partB
		case "alpha":
			p = partAlpha
		default:
			return "", 0, fmt.Errorf("%s: not a kohya LoRA key", key)
		}
		module, ok := k.kohya[flat]
		switch {
		case !ok && ldmName(flat):
			return "", 0, fmt.Errorf("%s: original-SD (ldm) block names are not supported, only diffusers module names", key)
		case !ok:
			return "", 0, fmt.Errorf("%s: no Linear or Conv2d module of the UNet is named %s with dots as underscores", key, flat)
		case module == "":
			return "", 0, fmt.Errorf("%s: %s names more than one module of the UNet", key, flat)
		}
		return module, p, nil
	}
	name := strings.TrimPrefix(key, unetPrefix)
	name = strings.TrimPrefix(name, peftPrefix)
	for _, s := range suffixes {
		module, ok := strings.CutSuffix(name, s.suffix)
		if !ok {
			continue
		}
		return module, s.part, nil
	}
	for _, dir := range []struct {
		suffix string
		part   part
	}{{".down.weight", partA}, {".up.weight", partB}} {
		stem, ok := strings.CutSuffix(name, dir.suffix)
		if !ok {
			continue
		}
		attn, layer, ok := cutLast(stem, ".processor.")
		if mod, known := processorLayers[layer]; ok && known {
			return attn + "." + mod, dir.part, nil
		}
	}
	return "", 0, fmt.Errorf("%s: not a LoRA key of a known layout", key)
}

// ldmName reports whether a kohya name uses the original Stable Diffusion
// (ldm / sgm) block names, which kohya's own trainer writes.
func ldmName(flat string) bool {
	for _, p := range []string{"input_blocks_", "middle_block_", "output_blocks_"} {
		if strings.HasPrefix(flat, p) {
			return true
		}
	}
	return false
}

// cutLast splits s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
