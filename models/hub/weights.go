package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// weightBases are the weight file stems diffusers (models) and transformers (text encoders) write.
var weightBases = []string{"diffusion_pytorch_model", "model"}

// WeightFiles lists, in order of preference, the file names WeightFile looks for. The variant goes
// before the extension, as diffusers' _add_variant does ("diffusion_pytorch_model.fp16.safetensors",
// "model.safetensors.index.fp16.json"); for an index the older "*.fp16.safetensors.index.json"
// spelling is accepted too.
func WeightFiles(variant string) []string {
	var names []string
	for _, base := range weightBases {
		if variant == "" {
			names = append(names, base+".safetensors", base+".safetensors.index.json")
			continue
		}
		names = append(names,
			base+"."+variant+".safetensors",
			base+".safetensors.index."+variant+".json",
			base+"."+variant+".safetensors.index.json")
	}
	return names
}

// WeightFile picks the weights of a component folder: a single .safetensors file or the index of a
// sharded checkpoint (read either with safetensors.ReadCheckpoint). With variant "fp16" (or any
// other) only that variant's files are taken; there is no silent fallback to full precision. When
// nothing fits, the error lists the files present.
func WeightFile(componentDir, variant string) (string, error) {
	if strings.ContainsAny(variant, `/\`) {
		return "", fmt.Errorf("weights in %s: invalid variant %q", componentDir, variant)
	}
	candidates := WeightFiles(variant)
	for _, name := range candidates {
		p := filepath.Join(componentDir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	entries, err := os.ReadDir(componentDir)
	if err != nil {
		return "", fmt.Errorf("weights: %w", err)
	}
	var have []string
	hasBin := false
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		have = append(have, e.Name())
		if strings.HasSuffix(e.Name(), ".bin") || strings.HasSuffix(e.Name(), ".bin.index.json") {
			hasBin = true
		}
	}
	what := "safetensors weights"
	if variant != "" {
		what = fmt.Sprintf("safetensors weights for variant %q", variant)
	}
	msg := fmt.Sprintf("no %s in %s: looked for %s; files present: %s", what, componentDir,
		strings.Join(candidates, ", "), listOrNone(have))
	if hasBin {
		msg += " (PyTorch .bin pickles are not supported; convert them to safetensors)"
	}
	return "", errors.New(msg)
}

// ReadConfig decodes componentDir/config.json into v. Scheduler folders hold
// scheduler_config.json instead, which is read when config.json is absent.
func ReadConfig(componentDir string, v any) error {
	path := filepath.Join(componentDir, "config.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		alt := filepath.Join(componentDir, "scheduler_config.json")
		if b2, err2 := os.ReadFile(alt); err2 == nil {
			path, b, err = alt, b2, nil
		}
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}
