package vae_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/vae"
)

// TestGoldenVAE checks encode (posterior mean and log-variance) and decode
// against diffusers' AutoencoderKL, one image per chunk with im2col
// convolutions and the whole batch with native ones; and the LCM pipeline's
// final decode (latents divided by the scaling factor first).
func TestGoldenVAE(t *testing.T) {
	b, choice, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(backend.Describe(b, choice))
	for _, s := range golden.Sidecars(t) {
		if !s.Has("vae.image") && !s.Has("pipe.image_raw") {
			continue
		}
		m, err := vae.Load(filepath.Join(s.ModelDir, "vae"), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			im2col bool
			chunk  int
		}{{true, 1}, {false, 0}} {
			t.Logf("im2col=%v chunk=%d", c.im2col, c.chunk)
			r := vae.NewRunner(b, m, nn.Options{ConvIm2Col: c.im2col})
			if s.Has("vae.image") {
				post, err := r.Encode(s.Tensor(t, "vae.image"), c.chunk)
				if err != nil {
					t.Fatal(err)
				}
				got, dims := golden.Host(t, post.Mean)
				s.CheckFloat32(t, "vae.latent_mean", got, dims)
				got, dims = golden.Host(t, post.LogVar)
				s.CheckFloat32(t, "vae.latent_logvar", got, dims)

				dec, err := r.Decode(s.Tensor(t, "vae.latents"), c.chunk)
				if err != nil {
					t.Fatal(err)
				}
				got, dims = golden.Host(t, dec)
				s.CheckFloat32(t, "vae.decoded", got, dims)
			}
			if s.Has("pipe.image_raw") {
				img, err := r.DecodeLatents(s.Tensor(t, "pipe.latent_out"), c.chunk)
				if err != nil {
					t.Fatal(err)
				}
				got, dims := golden.Host(t, img)
				s.CheckFloat32(t, "pipe.image_raw", got, dims)
			}
			r.Finalize()
		}
	}
}

// TestEncodeLatentsSamplesAndScales checks EncodeLatents against
// (mean + exp(logvar/2)·noise)·scaling_factor computed on the host from the
// golden posterior, and the mode path against mean·scaling_factor.
func TestEncodeLatentsSamplesAndScales(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	s := golden.Load(t, "tiny-sd-golden")
	m, err := vae.Load(filepath.Join(s.ModelDir, "vae"), "")
	if err != nil {
		t.Fatal(err)
	}
	r := vae.NewRunner(b, m, nn.Options{ConvIm2Col: true})
	defer r.Finalize()
	mean, _ := s.Float32(t, "vae.latent_mean")
	logvar, _ := s.Float32(t, "vae.latent_logvar")
	noise, _ := s.Float32(t, "lcd.noise")
	scale := m.Config.ScalingFactor
	for _, sample := range []bool{true, false} {
		var nt *tensors.Tensor
		if sample {
			nt = s.Tensor(t, "lcd.noise")
		}
		z, err := r.EncodeLatents(s.Tensor(t, "vae.image"), nt, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := golden.Host(t, z)
		worst := 0.0
		for i := range got {
			want := float64(mean[i])
			if sample {
				want += math.Exp(0.5*float64(logvar[i])) * float64(noise[i])
			}
			worst = max(worst, math.Abs(float64(got[i])-want*scale))
		}
		t.Logf("sample=%v max_abs_err=%.3g", sample, worst)
		if worst > 1e-4 {
			t.Errorf("sample=%v: latents differ from (mean + std·noise)·scale by %g", sample, worst)
		}
	}
}
