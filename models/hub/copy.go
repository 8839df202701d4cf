package hub

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// CopyComponent makes dst a self-contained copy of the component folder src
// (a text encoder, tokenizer or VAE) that loads with a plain from_pretrained:
// the weights variant picks are written under the names without a variant
// ("model.fp16.safetensors" becomes "model.safetensors", an index keeps its
// shards' names), other weight files are left out, and every other file
// (config.json, tokenizer files) is taken as it is. Files are hard-linked
// where the filesystem allows (same device, no cost in space) and copied
// otherwise; links in a Hugging Face cache snapshot are followed first, so
// the copy never points back into the cache. dst is replaced.
func CopyComponent(src, dst, variant string) (err error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("copy component: %w", err)
	}
	// A folder without weights (a tokenizer) copies every file.
	chosen, _ := WeightFile(src, variant)
	keep := map[string]string{} // source name -> destination name
	if chosen != "" {
		name := filepath.Base(chosen)
		base := weightBase(name)
		if strings.HasSuffix(name, ".json") {
			keep[name] = base + ".safetensors.index.json"
			shards, err := IndexShards(chosen)
			if err != nil {
				return err
			}
			for _, s := range shards {
				keep[s] = s
			}
		} else {
			keep[name] = base + ".safetensors"
		}
	}
	tmp := dst + ".tmp-copy"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for _, e := range entries {
		name := e.Name()
		to, ok := keep[name]
		if !ok && weightBase(name) != "" {
			continue // another variant's (or format's) weights
		}
		if !ok {
			to = name
		}
		info, err := os.Stat(filepath.Join(src, name)) // follows cache links
		if err != nil {
			return fmt.Errorf("copy component: %w", err)
		}
		if info.IsDir() {
			continue
		}
		if err := LinkOrCopy(filepath.Join(src, name), filepath.Join(tmp, to)); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// weightBase is the weight stem a file name starts with ("model",
// "diffusion_pytorch_model"), or "" for a file that is not weights.
func weightBase(name string) string {
	for _, base := range weightBases {
		if strings.HasPrefix(name, base+".") || strings.HasPrefix(name, base+"-") {
			return base
		}
	}
	return ""
}

// IndexShards lists, sorted and once each, the shard files a sharded
// checkpoint's index (*.safetensors.index.json) names.
func IndexShards(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	var shards []string
	for _, s := range index.WeightMap {
		if !slices.Contains(shards, s) {
			shards = append(shards, s)
		}
	}
	slices.Sort(shards)
	return shards, nil
}

// LinkOrCopy makes dst hold src's bytes: a hard link to the file src
// resolves to, or, where linking fails (another filesystem), a copy.
func LinkOrCopy(src, dst string) error {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	_ = os.Remove(dst)
	if os.Link(real, dst) == nil {
		return nil
	}
	in, err := os.Open(real)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("copy %s → %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("copy %s → %s: %w", src, dst, err)
	}
	return os.Rename(tmp, dst)
}
