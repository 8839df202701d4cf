package pipeline_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/models/vae"
	"github.com/golcm/golcm/objectives"
)

func initFashion(t testing.TB, seed uint64) *pipeline.Pipeline {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fashion")
	if err := pipeline.InitFashion(dir, seed); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(dir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInitFashionIsA32PixelPipeline: the fashion pipeline loads as an SD pipeline making 32×32
// images from 8×8×4 latents (×4 VAE), its UNet attends to the text encoder's 64-wide states, and
// the UNet runs on such latents.
func TestInitFashionIsA32PixelPipeline(t *testing.T) {
	p := initFashion(t, 3)
	t.Log(p.Describe())
	if h, w, err := p.DefaultSize(); err != nil || h != 32 || w != 32 || p.VAEScaleFactor() != 4 || p.Kind() != pipeline.SD {
		t.Fatalf("size %dx%d (%v), vae factor %d, kind %s; want 32x32, 4, sd", h, w, err, p.VAEScaleFactor(), p.Kind())
	}
	if p.UNet.Config.InChannels != p.VAE.Config.LatentChannels || p.UNet.Config.CrossDims[0] != p.TextEncoders[0].Config.HiddenSize {
		t.Errorf("unet in_channels %d / cross dim %d, vae latents %d / text width %d", p.UNet.Config.InChannels,
			p.UNet.Config.CrossDims[0], p.VAE.Config.LatentChannels, p.TextEncoders[0].Config.HiddenSize)
	}
	b, choice, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	in := unet.RandomInputs(rand.New(rand.NewPCG(1, 2)), p.UNet.Config, 2, 8)
	out, err := unet.NewRunner(b, p.UNet, nn.ForBackend(choice.Name())).Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	if data, dims, _ := nn.TensorFloat32(out); len(data) != 2*4*8*8 || dims[1] != 4 || math.IsNaN(float64(data[0])) {
		t.Errorf("unet out: shape %v, first value %v; want [2 4 8 8], finite", dims, data[0])
	}
}

// compileVAETraining compiles what the vae task differentiates: encode pixels, sample the
// posterior with the given noise, decode, and the autoencoder loss; outputs the loss and its
// gradient with respect to every weight of m, in m.Weights.Names() order.
func compileVAETraining(b compute.Backend, m *vae.Model, opts nn.Options, obj objectives.Autoencoder) (*nn.Program, error) {
	return nn.Compile(b, []*nn.Weights{m.Weights}, opts, func(g []*nn.Params, in []*Node) []*Node {
		root := g[0].Root("")
		post := vae.Encode(root, m.Config, in[0])
		recon := vae.Decode(root, m.Config, post.Sample(in[1]))
		loss := obj.Loss(in[0], recon, post.Mean, post.LogVar).Total
		params := make([]*Node, 0, m.Weights.Len())
		for _, name := range m.Weights.Names() {
			params = append(params, root.Param(name))
		}
		return append([]*Node{loss}, Gradient(loss, params...)...)
	})
}

// TestFashionVAETrainsEncoderAndDecoderInOneGraph: one graph runs the encoder, the posterior
// sample and the decoder with gradients; every weight gets a finite, nonzero gradient, and a small
// step against the gradient lowers the loss by lr·|g|² (the first-order check that the gradients
// are those of the loss).
func TestFashionVAETrainsEncoderAndDecoderInOneGraph(t *testing.T) {
	p := initFashion(t, 4)
	b, choice, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	// Without the KL term every encoder gradient must come through the sample and the decoder.
	obj := objectives.Autoencoder{Reconstruction: objectives.L2}
	prog, err := compileVAETraining(b, p.VAE, nn.ForBackend(choice.Name()), obj)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Finalize()
	rng := rand.New(rand.NewPCG(7, 8))
	pixels := nn.NormalTensor(rng, 2, 3, 32, 32)
	noise := nn.NormalTensor(rng, 2, 4, 8, 8)
	outs, err := prog.Run(pixels, noise)
	if err != nil {
		t.Fatal(err)
	}
	loss0 := float64(outs[0].Value().(float32))
	names := p.VAE.Weights.Names()
	if len(outs) != 1+len(names) {
		t.Fatalf("%d outputs, want 1 + %d weights", len(outs), len(names))
	}
	const lr = 1e-3
	var sq float64
	for i, name := range names {
		g, _, _ := nn.TensorFloat32(outs[1+i])
		w, dims, _ := p.VAE.Weights.Float32(name)
		var norm float64
		for j, v := range g {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: gradient element %d is %v", name, j, v)
			}
			norm += float64(v) * float64(v)
			w[j] -= lr * v
		}
		if norm == 0 {
			t.Errorf("%s: zero gradient", name)
		}
		sq += norm
		p.VAE.Weights.SetFloat32(name, w, dims...)
	}
	outs, err = prog.Run(pixels, noise)
	if err != nil {
		t.Fatal(err)
	}
	loss1 := float64(outs[0].Value().(float32))
	// First order: the loss falls by lr·|g|², within 20% for this small step.
	if drop, want := loss0-loss1, lr*sq; !(drop > 0.8*want && drop < 1.2*want) {
		t.Errorf("loss %g → %g after a step of lr %g: fell by %g, want %g ± 20%% (lr·|g|²)", loss0, loss1, lr, drop, want)
	}
	t.Logf("loss %g → %g (|g|² %g)", loss0, loss1, sq)
}
