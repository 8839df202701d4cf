package pipeline

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/tokenizer"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/models/vae"
)

func initTiny(t *testing.T, seed uint64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := InitTiny(dir, seed); err != nil {
		t.Fatal(err)
	}
	return dir
}

func finite(t *testing.T, what string, x *tensors.Tensor, wantDims ...int) {
	t.Helper()
	data, dims, err := nn.TensorFloat32(x)
	if err != nil {
		t.Fatal(err)
	}
	if len(dims) != len(wantDims) {
		t.Fatalf("%s: shape %v, want %v", what, dims, wantDims)
	}
	for i := range dims {
		if dims[i] != wantDims[i] {
			t.Fatalf("%s: shape %v, want %v", what, dims, wantDims)
		}
	}
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("%s: element %d is %v", what, i, v)
		}
	}
}

// TestInitTinyLoadsAndRuns: the tiny pipeline loads as an SD pipeline and
// its text encoder, UNet and VAE each run a forward pass.
func TestInitTinyLoadsAndRuns(t *testing.T) {
	dir := initTiny(t, 7)
	p, err := Load(dir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(p.Describe())
	if p.Kind() != SD {
		t.Errorf("kind %s, want sd", p.Kind())
	}
	h, w, err := p.DefaultSize()
	if err != nil || h != 64 || w != 64 {
		t.Errorf("default size %dx%d (%v), want 64x64", h, w, err)
	}
	if p.VAEScaleFactor() != 8 {
		t.Errorf("vae scale factor %d, want 8", p.VAEScaleFactor())
	}
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	opts := nn.Options{ConvIm2Col: true}

	tok := p.Tokenizers[0]
	ids, _ := tok.EncodeBatch([]string{"a photo of a cat", "Ünïcödé 東京 🐱"})
	idsT := tensors.FromFlatDataAndDimensions(ids, 2, tok.MaxLength)
	cond, err := clip.NewConditioner(b, opts, p.TextEncoders...)
	if err != nil {
		t.Fatal(err)
	}
	defer cond.Finalize()
	hc, err := cond.Encode(idsT)
	if err != nil {
		t.Fatal(err)
	}
	finite(t, "context", hc.Context, 2, 77, 64)

	sample := tensors.FromFlatDataAndDimensions(make([]float32, 2*4*8*8), 2, 4, 8, 8)
	out, err := unet.NewRunner(b, p.UNet, opts).Forward(unet.HostInputs{
		Sample:    sample,
		Timesteps: tensors.FromFlatDataAndDimensions([]int64{999, 1}, 2),
		Context:   hc.Context,
	})
	if err != nil {
		t.Fatal(err)
	}
	finite(t, "unet out", out, 2, 4, 8, 8)

	vr := vae.NewRunner(b, p.VAE, opts)
	defer vr.Finalize()
	pixels, err := vr.DecodeLatents(sample, 0)
	if err != nil {
		t.Fatal(err)
	}
	finite(t, "decoded", pixels, 2, 3, 64, 64)
	latents, err := vr.EncodeLatents(pixels, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	finite(t, "encoded", latents, 2, 4, 8, 8)
}

// TestInitTinySameSeedSameFiles: InitTiny is a pure function of its seed.
func TestInitTinySameSeedSameFiles(t *testing.T) {
	a, b, c := initTiny(t, 3), initTiny(t, 3), initTiny(t, 4)
	files := 0
	err := filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, path)
		x, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with seed 3", rel)
		}
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != 12 {
		t.Errorf("%d files written, want 12", files)
	}
	for _, rel := range []string{"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"} {
		x, _ := os.ReadFile(filepath.Join(a, rel))
		z, _ := os.ReadFile(filepath.Join(c, rel))
		if bytes.Equal(x, z) {
			t.Errorf("%s is the same for seeds 3 and 4", rel)
		}
	}
	if err := InitTiny(a, 5); err != nil {
		t.Errorf("re-initialising a pipeline folder: %v", err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644)
	if err := InitTiny(other, 5); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("writing into a non-empty folder: got %v, want a refusal", err)
	}
}

// TestTinyTokenizerRoundTrips: the tokenizer written by InitTiny loads back
// with the same ids, has one token for each caption word and still encodes any
// text through its byte tokens.
func TestTinyTokenizerRoundTrips(t *testing.T) {
	mem, err := tinyTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := mem.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	disk, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if disk.VocabSize != mem.VocabSize || disk.BOS != mem.BOS || disk.EOS != mem.EOS || disk.Pad != mem.Pad {
		t.Errorf("loaded tokenizer: vocab %d bos %d eos %d pad %d, want %d %d %d %d",
			disk.VocabSize, disk.BOS, disk.EOS, disk.Pad, mem.VocabSize, mem.BOS, mem.EOS, mem.Pad)
	}
	if mem.EOS != int64(mem.VocabSize-1) || mem.BOS != mem.EOS-1 {
		t.Errorf("bos %d eos %d, want the last two ids of %d", mem.BOS, mem.EOS, mem.VocabSize)
	}
	t.Logf("tiny tokenizer: %d tokens", mem.VocabSize)
	prompts := []string{"a photo of a cat", "A painting of an astronaut riding a horse, highly detailed!", "Café 東京 🐱 ½", ""}
	a, _ := mem.EncodeBatch(prompts)
	b, _ := disk.EncodeBatch(prompts)
	if !bytes.Equal(int64Bytes(a), int64Bytes(b)) {
		t.Errorf("ids differ after WriteDir/Load")
	}
	for _, word := range []string{"photo", "cat", "the", "painting", "mountain"} {
		if n := len(mem.Tokenize(word)); n != 1 {
			t.Errorf("%q takes %d tokens, want 1", word, n)
		}
	}
	for _, id := range mem.Tokenize("東京 🐱") {
		if id == mem.Unk {
			t.Errorf("unicode text gave the unknown token")
		}
	}
}

func int64Bytes(x []int64) []byte {
	var buf bytes.Buffer
	for _, v := range x {
		for k := range 8 {
			buf.WriteByte(byte(v >> (8 * k)))
		}
	}
	return buf.Bytes()
}

// TestLoadNamesWhatIsMissing: a missing component folder or scheduler
// config is an error naming it.
func TestLoadNamesWhatIsMissing(t *testing.T) {
	dir := initTiny(t, 1)
	if err := os.RemoveAll(filepath.Join(dir, "text_encoder")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, "", "", ""); err == nil || !strings.Contains(err.Error(), `"text_encoder"`) {
		t.Errorf("missing text_encoder: got %v", err)
	}
	dir = initTiny(t, 1)
	os.Remove(filepath.Join(dir, "scheduler", "scheduler_config.json"))
	if _, err := Load(dir, "", "", ""); err == nil || !strings.Contains(err.Error(), "scheduler_config.json") {
		t.Errorf("missing scheduler config: got %v", err)
	}
	if _, err := Load(t.TempDir(), "", "", ""); err == nil || !strings.Contains(err.Error(), "model_index.json") {
		t.Errorf("empty folder: got %v", err)
	}
	dir = initTiny(t, 1)
	if _, err := Load(dir, "", "fp16", ""); err == nil || !strings.Contains(err.Error(), "fp16") {
		t.Errorf("missing fp16 variant: got %v", err)
	}
}

// TestLoadRefusesOtherPipelineFamilies: a model_index.json naming a
// Kandinsky pipeline or an unconditional UNet2DModel is refused by name,
// not loaded into Stable Diffusion networks.
func TestLoadRefusesOtherPipelineFamilies(t *testing.T) {
	for _, c := range []struct{ key, value, want string }{
		{"_class_name", `"KandinskyPipeline"`, `_class_name "KandinskyPipeline" is not a Stable Diffusion or LCM pipeline`},
		{"unet", `["diffusers", "UNet2DModel"]`, "unet is a UNet2DModel, want UNet2DConditionModel"},
	} {
		dir := initTiny(t, 1)
		path := filepath.Join(dir, "model_index.json")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var index map[string]json.RawMessage
		if err := json.Unmarshal(data, &index); err != nil {
			t.Fatal(err)
		}
		index[c.key] = json.RawMessage(c.value)
		data, _ = json.Marshal(index)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir, "", "", ""); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s = %s: got %v, want an error with %q", c.key, c.value, err, c.want)
		}
	}
}

// TestLoadWithVAEOverride: -vae takes a VAE folder or a pipeline folder.
func TestLoadWithVAEOverride(t *testing.T) {
	dir, other := initTiny(t, 1), initTiny(t, 2)
	for _, override := range []string{filepath.Join(other, "vae"), other} {
		p, err := Load(dir, "", "", override)
		if err != nil {
			t.Fatal(err)
		}
		if p.VAEDir != filepath.Join(other, "vae") {
			t.Errorf("override %s: vae from %s", override, p.VAEDir)
		}
	}
	if _, err := Load(dir, "", "", t.TempDir()); err == nil || !strings.Contains(err.Error(), "vae override") {
		t.Errorf("empty override folder: got %v", err)
	}
}

// TestLoadFixturePipelines: the golden fixtures' SD and SD-XL pipelines load
// with the right kind.
func TestLoadFixturePipelines(t *testing.T) {
	for _, c := range []struct {
		name string
		kind Kind
	}{{"tiny-sd", SD}, {"tiny-sd-teacher", SD}, {"tiny-sdxl", SDXL}} {
		dir := filepath.Join(golden.Dir(), c.name)
		if _, err := os.Stat(dir); err != nil {
			t.Skipf("fixture %s: %v", c.name, err)
		}
		p, err := Load(dir, "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind() != c.kind {
			t.Errorf("%s: kind %s, want %s", c.name, p.Kind(), c.kind)
		}
		if c.kind == SDXL && !p.ForceZerosForEmptyPrompt {
			t.Errorf("%s: force_zeros_for_empty_prompt not read", c.name)
		}
		t.Log(p.Describe())
	}
}

// TestLoadOnReadsIntoBackendBuffers: LoadOn on the Go backend gives every
// component the weights Load gives, held in backend buffers the host shares.
func TestLoadOnReadsIntoBackendBuffers(t *testing.T) {
	dir := initTiny(t, 3)
	b, _, err := backend.Default("go")
	if err != nil {
		t.Fatal(err)
	}
	host, err := Load(dir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := LoadOn(b, dir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	pairs := map[string][2]*nn.Weights{
		"unet": {host.UNet.Weights, dev.UNet.Weights}, "vae": {host.VAE.Weights, dev.VAE.Weights},
		"text_encoder": {host.TextEncoders[0].Weights, dev.TextEncoders[0].Weights},
	}
	for what, w := range pairs {
		if w[0].Len() != w[1].Len() {
			t.Errorf("%s: %d weights on the backend, %d on the host", what, w[1].Len(), w[0].Len())
		}
		for _, name := range w[0].Names() {
			hv, _, err := w[0].Float32(name)
			if err != nil {
				t.Fatal(err)
			}
			dv, _, err := w[1].Float32(name)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if tensor, _ := w[1].Get(name); !tensor.IsShared() || !slices.Equal(hv, dv) {
				t.Errorf("%s %s: shared %v, equal to the host's %v", what, name, tensor.IsShared(), slices.Equal(hv, dv))
			}
		}
	}
}

// TestComponentFilesSharded: a sharded component's files are its config,
// the index and every shard the index names, once each and sorted (the
// files a latent cache hashes for this component).
func TestComponentFilesSharded(t *testing.T) {
	dir := t.TempDir()
	index := `{"metadata": {}, "weight_map": {"a.weight": "m-00002-of-00002.safetensors", "b.weight": "m-00001-of-00002.safetensors", "c.weight": "m-00002-of-00002.safetensors"}}`
	for name, data := range map[string]string{"config.json": "{}", "diffusion_pytorch_model.safetensors.index.json": index} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := componentFiles(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"config.json", "diffusion_pytorch_model.safetensors.index.json", "m-00001-of-00002.safetensors", "m-00002-of-00002.safetensors"}
	for i := range want {
		want[i] = filepath.Join(dir, want[i])
	}
	if !slices.Equal(got, want) {
		t.Errorf("componentFiles: %q, want %q", got, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors.index.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := componentFiles(dir, ""); err == nil || !strings.Contains(err.Error(), "index.json") {
		t.Errorf("a broken index: error %v, want one naming the index file", err)
	}
}
