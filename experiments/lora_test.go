package main

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/unet"
)

// TestLoRAConvertAndFuse: `lora convert -to kohya` keeps every module's
// scale·B·A (the kohya file carries alpha), and `lora fuse` writes a UNet
// folder whose weights are the base's plus (alpha/r)·B·A, computed here
// from the original adapters.
func TestLoRAConvertAndFuse(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny")
	if err := pipeline.InitTiny(model, 4); err != nil {
		t.Fatal(err)
	}
	base, err := unet.Load(filepath.Join(model, "unet"), "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(base.Config.ParamShapes(), lora.Config{Rank: 4, Alpha: 8}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	for _, m := range a.Modules {
		b, dims, _ := a.Weights.Float32(lora.ParamB(m.Name))
		for i := range b {
			b[i] = float32(rng.NormFloat64() * 0.05)
		}
		a.Weights.SetFloat32(lora.ParamB(m.Name), b, dims...)
	}
	in := filepath.Join(dir, lora.FileName)
	if err := a.Write(in, lora.FormatDiffusers, "F32"); err != nil {
		t.Fatal(err)
	}

	kohya := filepath.Join(dir, "k.safetensors")
	if err := runLoRA([]string{"convert", "-in", in, "-base", model, "-to", "kohya", "-out", kohya}); err != nil {
		t.Fatal(err)
	}
	fused := filepath.Join(dir, "fused-unet")
	if err := runLoRA([]string{"fuse", "-in", kohya, "-base", model, "-out", fused}); err != nil {
		t.Fatal(err)
	}
	got, err := unet.Load(fused, "")
	if err != nil {
		t.Fatalf("the fused folder does not load as a UNet: %v", err)
	}
	want := base.Weights
	if err := a.Fuse(want); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for _, name := range want.Names() {
		w, _, _ := want.Float32(name)
		g, _, err := got.Weights.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			worst = max(worst, math.Abs(float64(g[i]-w[i])))
		}
	}
	if worst > 1e-6 {
		t.Errorf("fused UNet differs from W + (alpha/r)·B·A by up to %.3g", worst)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"convert", "-in", in, "-base", model, "-to", "comfy", "-out", kohya}, "unknown file format"},
		{[]string{"convert", "-in", in, "-base", model, "-to", "kohya", "-out", in}, "is the -in file"},
		{[]string{"fuse", "-in", dir, "-base", model, "-out", fused}, "not a file"},
		{[]string{"merge"}, "unknown command"},
	} {
		if err := runLoRA(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("lora %q: got %v, want an error with %q", c.args, err, c.want)
		}
	}
}
