package hub

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golcm/golcm/internal/golden"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	mainHash = "0123456789abcdef0123456789abcdef01234567"
	prHash   = "fedcba9876543210fedcba9876543210fedcba98"
)

// fakeCache lays out a Hugging Face cache with org/model at two commits and points HF_HUB_CACHE at it.
func fakeCache(t *testing.T) string {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	repo := filepath.Join(cache, "models--org--model")
	write(t, filepath.Join(repo, "refs", "main"), mainHash) // huggingface_hub writes no newline
	write(t, filepath.Join(repo, "refs", "v1.0"), prHash+"\n")
	write(t, filepath.Join(repo, "refs", "refs", "pr", "1"), prHash)
	write(t, filepath.Join(repo, "refs", "broken"), "deadbeef")
	write(t, filepath.Join(repo, "snapshots", mainHash, "model_index.json"), `{"_class_name":"StableDiffusionPipeline"}`)
	write(t, filepath.Join(repo, "snapshots", prHash, "model_index.json"), `{"_class_name":"StableDiffusionXLPipeline"}`)
	return cache
}

func TestResolveFindsCacheSnapshots(t *testing.T) {
	cache := fakeCache(t)
	snap := func(h string) string { return filepath.Join(cache, "models--org--model", "snapshots", h) }
	cases := []struct{ revision, want string }{
		{"", snap(mainHash)},
		{"main", snap(mainHash)},
		{"v1.0", snap(prHash)},
		{"refs/pr/1", snap(prHash)},
		{prHash, snap(prHash)},
	}
	for _, c := range cases {
		got, err := Resolve("org/model", c.revision)
		if err != nil || got != c.want {
			t.Errorf("Resolve(org/model, %q) = %q, %v; want %q", c.revision, got, err, c.want)
		}
	}
}

func TestResolveUsesLocalFolderAsIs(t *testing.T) {
	fakeCache(t)
	dir := t.TempDir()
	if got, err := Resolve(dir, "whatever"); err != nil || got != dir {
		t.Errorf("Resolve(%s) = %q, %v", dir, got, err)
	}
}

func TestResolveExplainsWhereItLooked(t *testing.T) {
	cache := fakeCache(t)
	cases := []struct {
		name, revision string
		want           []string
	}{
		{"org/missing", "", []string{"org/missing: not a local folder", filepath.Join(cache, "models--org--missing"), "huggingface-cli download org/missing", "local diffusers folder"}},
		{"org/model", "nope", []string{filepath.Join("refs", "nope") + ": no such ref", filepath.Join("snapshots", "nope"), "huggingface-cli download org/model --revision nope"}},
		{"org/model", "broken", []string{`names commit "deadbeef"`}},
		{"./not/a/dir/either", "", []string{"not a Hugging Face model id"}},
		{"org/model", "../../etc", []string{"invalid revision"}},
	}
	for _, c := range cases {
		_, err := Resolve(c.name, c.revision)
		if err == nil {
			t.Errorf("Resolve(%q, %q) succeeded", c.name, c.revision)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%q, %q) error does not mention %q:\n%v", c.name, c.revision, w, err)
			}
		}
	}
}

func TestCacheDirFollowsEnvironment(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	t.Setenv("HF_HOME", "/x/hf")
	if got := CacheDir(); got != "/x/hf/hub" {
		t.Errorf("HF_HOME: %s", got)
	}
	t.Setenv("HF_HUB_CACHE", "/y/cache")
	if got := CacheDir(); got != "/y/cache" {
		t.Errorf("HF_HUB_CACHE: %s", got)
	}
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	home, _ := os.UserHomeDir()
	if got := CacheDir(); got != filepath.Join(home, ".cache", "huggingface", "hub") {
		t.Errorf("default: %s", got)
	}
}

func TestWeightFilePicksVariantAndShards(t *testing.T) {
	dir := t.TempDir()
	unet := filepath.Join(dir, "unet")
	write(t, filepath.Join(unet, "diffusion_pytorch_model.safetensors"), "")
	write(t, filepath.Join(unet, "diffusion_pytorch_model.fp16.safetensors"), "")
	sharded := filepath.Join(dir, "sharded")
	write(t, filepath.Join(sharded, "diffusion_pytorch_model.safetensors.index.json"), "{}")
	write(t, filepath.Join(sharded, "diffusion_pytorch_model.safetensors.index.fp16.json"), "{}")
	te := filepath.Join(dir, "text_encoder")
	write(t, filepath.Join(te, "model.safetensors"), "")
	legacy := filepath.Join(dir, "legacy")
	write(t, filepath.Join(legacy, "model.fp16.safetensors.index.json"), "{}")

	cases := []struct{ dir, variant, want string }{
		{unet, "", "diffusion_pytorch_model.safetensors"},
		{unet, "fp16", "diffusion_pytorch_model.fp16.safetensors"},
		{sharded, "", "diffusion_pytorch_model.safetensors.index.json"},
		{sharded, "fp16", "diffusion_pytorch_model.safetensors.index.fp16.json"},
		{te, "", "model.safetensors"},
		{legacy, "fp16", "model.fp16.safetensors.index.json"},
	}
	for _, c := range cases {
		got, err := WeightFile(c.dir, c.variant)
		if err != nil || got != filepath.Join(c.dir, c.want) {
			t.Errorf("WeightFile(%s, %q) = %q, %v; want %s", filepath.Base(c.dir), c.variant, got, err, c.want)
		}
	}

	// The fp16 variant is not silently replaced by full precision, and pickles are called out.
	_, err := WeightFile(te, "fp16")
	if err == nil || !strings.Contains(err.Error(), `variant "fp16"`) || !strings.Contains(err.Error(), "files present: model.safetensors") {
		t.Errorf("missing variant: %v", err)
	}
	pickles := filepath.Join(dir, "pickles")
	write(t, filepath.Join(pickles, "pytorch_model.bin"), "")
	write(t, filepath.Join(pickles, "config.json"), "{}")
	_, err = WeightFile(pickles, "")
	if err == nil || !strings.Contains(err.Error(), "config.json, pytorch_model.bin") || !strings.Contains(err.Error(), ".bin pickles are not supported") {
		t.Errorf("pickles: %v", err)
	}
}

func TestReadConfigNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "unet", "config.json"), `{"in_channels": 4, "block_out_channels": [32, 64]}`)
	write(t, filepath.Join(dir, "scheduler", "scheduler_config.json"), `{"num_train_timesteps": 1000}`)
	write(t, filepath.Join(dir, "bad", "config.json"), `{"in_channels": "four"}`)
	var cfg struct {
		InChannels       int   `json:"in_channels"`
		BlockOutChannels []int `json:"block_out_channels"`
	}
	if err := ReadConfig(filepath.Join(dir, "unet"), &cfg); err != nil || cfg.InChannels != 4 || !slices.Equal(cfg.BlockOutChannels, []int{32, 64}) {
		t.Errorf("unet config %+v, %v", cfg, err)
	}
	var sched struct {
		NumTrainTimesteps int `json:"num_train_timesteps"`
	}
	if err := ReadConfig(filepath.Join(dir, "scheduler"), &sched); err != nil || sched.NumTrainTimesteps != 1000 {
		t.Errorf("scheduler config %+v, %v", sched, err)
	}
	for _, c := range []string{"bad", "absent"} {
		err := ReadConfig(filepath.Join(dir, c), &cfg)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, c, "config.json")) {
			t.Errorf("%s: %v", c, err)
		}
	}
}

func TestReadModelIndexOfFakeFolder(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "model_index.json"), `{"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.26.3",
	  "safety_checker": [null, null], "requires_safety_checker": false, "unet": ["diffusers", "UNet2DConditionModel"]}`)
	write(t, filepath.Join(dir, "unet", "config.json"), "{}")
	m, err := ReadModelIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.ClassName != "StableDiffusionPipeline" || m.DiffusersVersion != "0.26.3" || !slices.Equal(m.ComponentNames(), []string{"unet"}) ||
		m.Components["unet"] != (Component{"diffusers", "UNet2DConditionModel"}) || string(m.Options["requires_safety_checker"]) != "false" {
		t.Errorf("model index %+v", m)
	}
	if got, err := ComponentDir(dir, "unet"); err != nil || got != filepath.Join(dir, "unet") {
		t.Errorf("ComponentDir(unet) = %q, %v", got, err)
	}
	if _, err := ComponentDir(dir, "vae"); err == nil || !strings.Contains(err.Error(), "folders in "+dir+": unet") {
		t.Errorf("ComponentDir(vae): %v", err)
	}
	write(t, filepath.Join(dir, "bad", "model_index.json"), `{"_class_name": "X", "unet": ["diffusers"]}`)
	if _, err := ReadModelIndex(filepath.Join(dir, "bad")); err == nil || !strings.Contains(err.Error(), "model_index.json") {
		t.Errorf("bad index: %v", err)
	}
	if _, err := ReadModelIndex(filepath.Join(dir, "unet")); err == nil || !strings.Contains(err.Error(), "model_index.json") {
		t.Errorf("missing index: %v", err)
	}
}

func TestReadModelIndexOfFixtures(t *testing.T) {
	fixtures := golden.Dir()
	want := map[string]struct {
		class      string
		components []string
	}{
		"tiny-sd":   {"LatentConsistencyModelPipeline", []string{"scheduler", "text_encoder", "tokenizer", "unet", "vae"}},
		"tiny-sdxl": {"StableDiffusionXLPipeline", []string{"scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae"}},
	}
	for name, w := range want {
		local := filepath.Join(fixtures, name)
		if !isDir(local) {
			t.Skipf("fixture folder %s not found (set %s to the fixture folder)", local, golden.EnvDir)
		}
		dir, err := Resolve(local, "")
		if err != nil || dir != local {
			t.Fatalf("Resolve(%s) = %q, %v", local, dir, err)
		}
		m, err := ReadModelIndex(dir)
		if err != nil {
			t.Fatal(err)
		}
		if m.ClassName != w.class || !slices.Equal(m.ComponentNames(), w.components) {
			t.Errorf("%s: %s %v, want %s %v", name, m.ClassName, m.ComponentNames(), w.class, w.components)
		}
		for _, c := range m.ComponentNames() {
			cdir, err := ComponentDir(dir, c)
			if err != nil {
				t.Error(err)
				continue
			}
			var cfg map[string]any
			if c != "tokenizer" && c != "tokenizer_2" {
				if err := ReadConfig(cdir, &cfg); err != nil {
					t.Error(err)
				}
			}
			if lib := m.Components[c].Library; c == "unet" || c == "vae" || strings.HasPrefix(c, "text_encoder") {
				if _, err := WeightFile(cdir, ""); err != nil {
					t.Errorf("%s (%s): %v", c, lib, err)
				}
			}
		}
	}
}
