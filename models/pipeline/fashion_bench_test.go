package pipeline_test

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/objectives"
)

// The Fashion-MNIST training steps' cost: one forward+backward of the "fashion" UNet on a batch
// of 32 8×8×4 latents, and of the ×4 VAE (encode, sample, decode, L2 + KL) on 32 images of 32×32.
// $GOLCM_BENCH_BACKEND picks the backend.

func BenchmarkFashionUNetForwardBackward(b *testing.B) {
	benchFashion(b, func(p *pipeline.Pipeline, be backendAndOptions) (*nn.Program, []*tensors.Tensor, error) {
		in := unet.RandomInputs(rand.New(rand.NewPCG(1, 2)), p.UNet.Config, 32, 8)
		prog, err := unet.CompileProbe(be.backend, p.UNet.Config, p.UNet.Weights, be.opts, true)
		return prog, []*tensors.Tensor{in.Sample, in.Timesteps, in.Context}, err
	})
}

func BenchmarkFashionVAEForwardBackward(b *testing.B) {
	benchFashion(b, func(p *pipeline.Pipeline, be backendAndOptions) (*nn.Program, []*tensors.Tensor, error) {
		obj := objectives.Autoencoder{Reconstruction: objectives.L2, KLWeight: 1e-6}
		prog, err := compileVAETraining(be.backend, p.VAE, be.opts, obj)
		rng := rand.New(rand.NewPCG(7, 8))
		return prog, []*tensors.Tensor{nn.NormalTensor(rng, 32, 3, 32, 32), nn.NormalTensor(rng, 32, 4, 8, 8)}, err
	})
}

type backendAndOptions struct {
	backend compute.Backend
	opts    nn.Options
}

// benchFashion times the program compile makes for the fashion pipeline, after an untimed warm-up
// run that also compiles.
func benchFashion(b *testing.B, compile func(*pipeline.Pipeline, backendAndOptions) (*nn.Program, []*tensors.Tensor, error)) {
	be, choice, err := backend.Default(os.Getenv("GOLCM_BENCH_BACKEND"))
	if err != nil {
		b.Fatal(err)
	}
	b.Log(backend.Describe(be, choice))
	prog, inputs, err := compile(initFashion(b, 1), backendAndOptions{be, nn.ForBackend(choice.Name())})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Finalize()
	if _, err := prog.Run(inputs...); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := prog.Run(inputs...); err != nil {
			b.Fatal(err)
		}
	}
}
