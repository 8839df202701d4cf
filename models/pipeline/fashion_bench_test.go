package pipeline_test

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
	"github.com/golcm/golcm/objectives"
)

// The Fashion-MNIST training steps' cost: one forward+backward of the "fashion" UNet on a batch
// of 32 8×8×4 latents, and of the ×4 VAE (encode, sample, decode, L2 + KL) on 32 images of 32×32,
// after an untimed warm-up run that also compiles. $GOLCM_BENCH_BACKEND picks the backend.

func BenchmarkFashionUNetForwardBackward(b *testing.B) {
	be, choice, err := backend.Default(os.Getenv("GOLCM_BENCH_BACKEND"))
	if err != nil {
		b.Fatal(err)
	}
	b.Log(backend.Describe(be, choice))
	p := initFashion(b, 1)
	in := unet.RandomInputs(rand.New(rand.NewPCG(1, 2)), p.UNet.Config, 32, 8)
	prog, err := unet.CompileProbe(be, p.UNet.Config, p.UNet.Weights, nn.ForBackend(choice.Name()), true)
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Finalize()
	if _, err := prog.Run(in.Sample, in.Timesteps, in.Context); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := prog.Run(in.Sample, in.Timesteps, in.Context); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFashionVAEForwardBackward(b *testing.B) {
	be, choice, err := backend.Default(os.Getenv("GOLCM_BENCH_BACKEND"))
	if err != nil {
		b.Fatal(err)
	}
	b.Log(backend.Describe(be, choice))
	p := initFashion(b, 1)
	obj := objectives.Autoencoder{Reconstruction: objectives.L2, KLWeight: 1e-6}
	prog, err := compileVAETraining(be, p.VAE, nn.ForBackend(choice.Name()), obj)
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Finalize()
	rng := rand.New(rand.NewPCG(7, 8))
	pixels, noise := nn.NormalTensor(rng, 32, 3, 32, 32), nn.NormalTensor(rng, 32, 4, 8, 8)
	if _, err := prog.Run(pixels, noise); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := prog.Run(pixels, noise); err != nil {
			b.Fatal(err)
		}
	}
}
