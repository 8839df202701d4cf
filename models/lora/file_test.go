package lora_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/safetensors"
	"github.com/golcm/golcm/models/unet"
)

func tinyShapes(t *testing.T) map[string][]int {
	t.Helper()
	cfg, err := unet.ParseConfig([]byte(tinyLinearUNet), "tiny-linear")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.ParamShapes()
}

// testAdapters are rank-4 adapters with alpha 6 (≠ rank), random B, and one
// module with its own alpha, so per-module scales must survive a file.
func testAdapters(t *testing.T, shapes map[string][]int) *lora.Adapters {
	t.Helper()
	a, err := lora.New(shapes, lora.Config{Rank: 4, Alpha: 6}, 3)
	if err != nil {
		t.Fatal(err)
	}
	randomizeUp(t, a, 4, 0.1)
	a.Modules[3].Alpha = 2.5
	return a
}

// sameAdapters compares modules (names, shapes, ranks, alphas) and weights
// bit for bit.
func sameAdapters(t *testing.T, label string, got, want *lora.Adapters) {
	t.Helper()
	if !slices.Equal(got.Modules, want.Modules) {
		for i := range min(len(got.Modules), len(want.Modules)) {
			if got.Modules[i] != want.Modules[i] {
				t.Fatalf("%s: module %d is %+v, want %+v", label, i, got.Modules[i], want.Modules[i])
			}
		}
		t.Fatalf("%s: %d modules, want %d", label, len(got.Modules), len(want.Modules))
	}
	if !slices.Equal(got.Weights.Names(), want.Weights.Names()) {
		t.Fatalf("%s: weights %v, want %v", label, got.Weights.Names(), want.Weights.Names())
	}
	for _, n := range want.Weights.Names() {
		g, gd, _ := got.Weights.Float32(n)
		w, wd, _ := want.Weights.Float32(n)
		if !slices.Equal(gd, wd) || !slices.Equal(g, w) {
			t.Fatalf("%s: %s differs after the round trip", label, n)
		}
	}
}

// TestFileRoundTrips writes and reads every format with alpha ≠ rank and a
// per-module alpha. A kohya file keeps modules, alphas and weights exactly;
// the diffusers files fold alpha/r into B (alpha = rank after reading) and
// keep every key "lora"-named (diffusers' load_lora_weights rejects others),
// with no header needed while ranks agree. The product scale·B·A is the same.
func TestFileRoundTrips(t *testing.T) {
	shapes := tinyShapes(t)
	a := testAdapters(t, shapes)
	dir := t.TempDir()
	for _, f := range []lora.Format{lora.FormatDiffusers, lora.FormatKohya, lora.FormatDiffusersOld} {
		path := filepath.Join(dir, f.String()+".safetensors")
		if err := a.Write(path, f, safetensors.F32); err != nil {
			t.Fatal(err)
		}
		file, err := safetensors.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		names := file.Names()
		_, hasMeta := file.Metadata["lora_adapter_metadata"]
		t.Logf("%s: %d keys, first %s, lora_adapter_metadata header: %v", f, len(names), names[0], hasMeta)
		got, err := lora.Read(path, shapes)
		if err != nil {
			t.Fatal(err)
		}
		if f == lora.FormatKohya {
			sameAdapters(t, f.String(), got, a)
			if got.Config.Rank != 4 || got.Config.Alpha != 6 {
				t.Errorf("%s: read config rank %d alpha %v, want 4 and 6", f, got.Config.Rank, got.Config.Alpha)
			}
			continue
		}
		for _, n := range names {
			if !strings.Contains(n, "lora") || !strings.HasPrefix(n, "unet.") {
				t.Errorf("%s: key %q would not load in diffusers", f, n)
			}
		}
		if hasMeta {
			t.Errorf("%s: equal ranks need no lora_adapter_metadata header, got %q", f, file.Metadata["lora_adapter_metadata"])
		}
		sameProducts(t, f.String(), got, a)
	}

	plain, err := lora.New(shapes, lora.Config{Rank: 4, Alpha: 4}, 3)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, lora.FileName)
	if err := plain.Write(path, lora.FormatDiffusers, safetensors.F16); err != nil {
		t.Fatal(err)
	}
	file, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := file.Metadata["lora_adapter_metadata"]; ok || file.Metadata["format"] != "pt" {
		t.Errorf("alpha = rank: header %v, want only format=pt", file.Metadata)
	}
	got, err := lora.Read(path, shapes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Modules, plain.Modules) {
		t.Errorf("F16 file: modules changed")
	}
}

// sameProducts checks that got and want add the same scale·B·A to every
// module (float32 rounding of the folded B aside).
func sameProducts(t *testing.T, label string, got, want *lora.Adapters) {
	t.Helper()
	if len(got.Modules) != len(want.Modules) {
		t.Fatalf("%s: %d modules, want %d", label, len(got.Modules), len(want.Modules))
	}
	for i, m := range want.Modules {
		g := got.Modules[i]
		if g.Name != m.Name || g.Rank != m.Rank {
			t.Fatalf("%s: module %d is %s rank %d, want %s rank %d", label, i, g.Name, g.Rank, m.Name, m.Rank)
		}
		gb, _, _ := got.Weights.Float32(lora.ParamB(m.Name))
		wb, _, _ := want.Weights.Float32(lora.ParamB(m.Name))
		for j := range wb {
			gv, wv := g.Scale()*float64(gb[j]), m.Scale()*float64(wb[j])
			if math.Abs(gv-wv) > 1e-6*math.Abs(wv)+1e-12 {
				t.Fatalf("%s: %s scale·B[%d] = %g, want %g", label, m.Name, j, gv, wv)
			}
		}
	}
}

// TestDiffusersFileLoadsAtTrainedStrength reads a diffusers file the way
// diffusers 0.26 does — tensors only, header ignored, alpha = r — and fuses
// it: W + 1·B·A must equal golcm's W + (alpha/r)·B·A for r = 8, alpha = 16
// (scale 2) and for the per-module alpha of testAdapters.
func TestDiffusersFileLoadsAtTrainedStrength(t *testing.T) {
	shapes := tinyShapes(t)
	for _, cfg := range []lora.Config{{Rank: 8, Alpha: 16}, {Rank: 4, Alpha: 6}} {
		a, err := lora.New(shapes, cfg, 5)
		if err != nil {
			t.Fatal(err)
		}
		randomizeUp(t, a, 6, 0.1)
		a.Modules[1].Alpha = 1.5
		path := filepath.Join(t.TempDir(), lora.FileName)
		if err := a.Write(path, lora.FormatDiffusers, safetensors.F32); err != nil {
			t.Fatal(err)
		}
		file, err := safetensors.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range a.Modules {
			A, _, _ := a.Weights.Float32(lora.ParamA(m.Name))
			B, _, _ := a.Weights.Float32(lora.ParamB(m.Name))
			fa, err := file.Tensors["unet."+m.Name+".lora_A.weight"].Float32()
			if err != nil {
				t.Fatal(err)
			}
			fb, err := file.Tensors["unet."+m.Name+".lora_B.weight"].Float32()
			if err != nil {
				t.Fatal(err)
			}
			cols := len(A) / m.Rank
			worst, peak := 0.0, 0.0
			for o := range m.Out {
				for j := range cols {
					var want, got float64
					for k := range m.Rank {
						want += float64(B[o*m.Rank+k]) * float64(A[k*cols+j])
						got += float64(fb[o*m.Rank+k]) * float64(fa[k*cols+j])
					}
					want *= m.Scale()
					worst, peak = max(worst, math.Abs(got-want)), max(peak, math.Abs(want))
				}
			}
			if worst /= peak; !(worst < 1e-6) {
				t.Errorf("r=%d alpha=%g: %s loaded without metadata is off by %.3g of its largest entry from W + %g·B·A", m.Rank, m.Alpha, m.Name, worst, m.Scale())
			}
		}
	}
}

// writeKeys writes F32 tensors under the given keys (scalars when dims is empty).
func writeKeys(t *testing.T, path string, keys map[string][]int, meta map[string]string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(8, 8))
	var list []*safetensors.Tensor
	for k, dims := range keys {
		data := make([]float32, size(dims))
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		if strings.HasSuffix(k, ".alpha") {
			data[0] = 5
		}
		list = append(list, safetensors.FromFloat32(k, dims, data))
	}
	if meta == nil {
		meta = map[string]string{"format": "pt"}
	}
	if err := safetensors.WriteFile(path, list, meta); err != nil {
		t.Fatal(err)
	}
}

// TestReadsPublishedLayouts reads the layouts LoRA files come in besides
// golcm's own: PEFT names (bare and under unet.), the SDXL LCM-LoRA script's
// mixed lora_A / lora.down file, diffusers 0.14-0.20 attention processors,
// unet.<module>.alpha scalars, and a PEFT adapter_model.safetensors whose
// lora_alpha is in adapter_config.json.
func TestReadsPublishedLayouts(t *testing.T) {
	shapes := tinyShapes(t)
	dir := t.TempDir()
	attn := "down_blocks.1.attentions.0.transformer_blocks.0.attn1"
	conv := "down_blocks.0.resnets.0.conv1" // 4 -> 4 channels, 3×3
	proj := "down_blocks.1.attentions.0.proj_in"
	lin := func(r int) (a, b []int) { return []int{r, 8}, []int{8, r} }
	a2, b2 := lin(2)
	cases := []struct {
		name   string
		keys   map[string][]int
		config string // adapter_config.json, for adapter_model.safetensors
		want   map[string]float64
	}{
		{"peft-under-unet.safetensors", map[string][]int{
			"unet.base_model.model." + attn + ".to_q.lora_A.weight": a2,
			"unet.base_model.model." + attn + ".to_q.lora_B.weight": b2,
			"unet.base_model.model." + conv + ".lora_A.weight":      {2, 4, 3, 3},
			"unet.base_model.model." + conv + ".lora_B.weight":      {4, 2, 1, 1},
		}, "", map[string]float64{attn + ".to_q": 2, conv: 2}},
		{"mixed-xlh.safetensors", map[string][]int{
			"unet." + attn + ".to_out.0.lora.down.weight": a2,
			"unet." + attn + ".to_out.0.lora.up.weight":   b2,
			"unet." + proj + ".lora_A.weight":             a2,
			"unet." + proj + ".lora_B.weight":             b2,
			"unet." + proj + ".alpha":                     {},
		}, "", map[string]float64{attn + ".to_out.0": 2, proj: 5}},
		{"processor.safetensors", map[string][]int{
			"unet." + attn + ".processor.to_k_lora.down.weight": a2,
			"unet." + attn + ".processor.to_k_lora.up.weight":   b2,
			attn + ".processor.to_out_lora.down.weight":         a2,
			attn + ".processor.to_out_lora.up.weight":           b2,
		}, "", map[string]float64{attn + ".to_k": 2, attn + ".to_out.0": 2}},
		{"adapter_model.safetensors", map[string][]int{
			"base_model.model." + attn + ".to_v.lora_A.weight": a2,
			"base_model.model." + attn + ".to_v.lora_B.weight": b2,
		}, `{"r": 2, "lora_alpha": 16, "alpha_pattern": {}}`, map[string]float64{attn + ".to_v": 16}},
	}
	for _, c := range cases {
		sub := filepath.Join(dir, strings.TrimSuffix(c.name, ".safetensors"))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(sub, c.name)
		writeKeys(t, path, c.keys, nil)
		if c.config != "" {
			if err := os.WriteFile(filepath.Join(sub, "adapter_config.json"), []byte(c.config), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := lora.Read(path, shapes)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		alphas := map[string]float64{}
		for _, m := range got.Modules {
			alphas[m.Name] = m.Alpha
		}
		if len(alphas) != len(c.want) {
			t.Errorf("%s: modules %v, want %v", c.name, alphas, c.want)
		}
		for name, alpha := range c.want {
			if a, ok := alphas[name]; !ok || a != alpha {
				t.Errorf("%s: module %s alpha %v (present %v), want %v", c.name, name, a, ok, alpha)
			}
		}
	}
}

// TestReadListsBadKeys: one error names every key that does not fit the
// UNet: an unknown layout, a text-encoder LoRA, a module the UNet lacks, a
// wrong shape, and a lora_A without its lora_B.
func TestReadListsBadKeys(t *testing.T) {
	shapes := tinyShapes(t)
	path := filepath.Join(t.TempDir(), lora.FileName)
	attn := "down_blocks.1.attentions.0.transformer_blocks.0.attn2"
	writeKeys(t, path, map[string][]int{
		"unet." + attn + ".to_q.lora_A.weight":                              {2, 8},
		"unet." + attn + ".to_q.lora_B.weight":                              {8, 2},
		"unet." + attn + ".to_k.lora_A.weight":                              {2, 8}, // to_k reads the 6-wide context
		"unet." + attn + ".to_k.lora_B.weight":                              {8, 2},
		"unet.mid_block.resnets.0.conv1.lora_A.weight":                      {2, 8, 3, 3},
		"unet.down_blocks.7.resnets.0.conv1.lora_A.weight":                  {2, 8, 3, 3},
		"unet.down_blocks.7.resnets.0.conv1.lora_B.weight":                  {8, 2, 1, 1},
		"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight":      {2, 8},
		"unet." + attn + ".to_v.hada_w1_a":                                  {2, 8},
		"lora_unet_down_blocks_1_attentions_0_proj_out.lora_mid.weight":     {2, 8},
		"lora_unet_down_blocks_1_attentions_0_proj_out.lora_down.weight":    {2, 8},
		"lora_unet_down_blocks_1_attentions_0_proj_out.lora_up.weight":      {8, 2},
		"unet.down_blocks.1.attentions.0.proj_out.lora_A.weight":            {2, 8},
		"unet.down_blocks.1.attentions.0.proj_out.norm.lora_A.weight":       {2, 8},
		"unet.down_blocks.1.attentions.0.proj_out.norm.lora_B.weight":       {8, 2},
		"unet.down_blocks.1.attentions.0.norm.lora_A.weight":                {2, 8},
		"unet.down_blocks.1.attentions.0.norm.lora_B.weight":                {8, 2},
		"unet.up_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.alpha": {2},
	}, nil)
	_, err := lora.Read(path, shapes)
	if err == nil {
		t.Fatal("a file with bad keys was read without error")
	}
	msg := err.Error()
	t.Log(msg)
	for _, want := range []string{
		attn + ".to_k.lora_A.weight is [2 8]",                          // wrong shape
		"mid_block.resnets.0.conv1",                                    // lora_A without lora_B
		"the UNet has no module down_blocks.7.resnets.0.conv1",         // module the UNet lacks
		"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", // text encoder
		"to_v.hada_w1_a",          // unknown layout
		"lora_mid.weight",         // unknown kohya part
		"proj_out A (down) again", // same module twice
		"the UNet has no module down_blocks.1.attentions.0.proj_out.norm", // not a module
		"down_blocks.1.attentions.0.norm is neither Linear nor Conv2d",
		"A (down) and B (up) of up_blocks.0.attentions.0.transformer_blocks.0.ff.net.2", // a lone alpha
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q", want)
		}
	}
}
