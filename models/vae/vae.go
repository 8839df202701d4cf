// Package vae is diffusers' AutoencoderKL in GoMLX: the Stable Diffusion
// image autoencoder that maps pixels in [-1, 1] to the diagonal Gaussian
// posterior over latents (Encode) and latents back to pixels (Decode).
//
// The architecture comes entirely from config.json (see Config); weights are
// addressed by diffusers' state-dict names ("encoder.mid_block.attentions.0.
// to_q.weight") through an nn.Scope rooted at the VAE folder's weights. The
// graph functions (Encode, Decode, Posterior, Config.Latents/Unscale) can be
// built into a larger program; Runner runs them on host tensors in chunks.
// Depends on models/nn, models/hub and GoMLX.
package vae

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/models/nn"
)

// Posterior is the encoder's diagonal Gaussian over latents, as diffusers'
// DiagonalGaussianDistribution: Mean and LogVar are [B, latent_channels,
// H/f, W/f], LogVar already clamped to [-30, 20].
type Posterior struct {
	Mean, LogVar *Node
}

// Mode is the distribution's mode, its mean.
func (p Posterior) Mode() *Node { return p.Mean }

// Sample is mean + exp(0.5·logvar)·noise, with noise ~ N(0, 1) shaped like
// the mean (DiagonalGaussianDistribution.sample with the draw supplied).
func (p Posterior) Sample(noise *Node) *Node {
	return Add(p.Mean, Mul(Exp(MulScalar(p.LogVar, 0.5)), noise))
}

// Latents maps a posterior sample or mode to the diffusion model's latent
// space: (x - shift_factor) · scaling_factor, as diffusers' training scripts
// and pipelines do.
func (c *Config) Latents(x *Node) *Node {
	if s := c.Shift(); s != 0 {
		x = AddScalar(x, -s)
	}
	return MulScalar(x, c.ScalingFactor)
}

// Unscale is the inverse of Latents, applied before Decode:
// z / scaling_factor + shift_factor.
func (c *Config) Unscale(z *Node) *Node {
	z = DivScalar(z, c.ScalingFactor)
	if s := c.Shift(); s != 0 {
		z = AddScalar(z, s)
	}
	return z
}

// Encode builds AutoencoderKL.encode: the Encoder, quant_conv, then the
// split into mean and clamped log-variance. s is the scope at the root of
// the VAE's weights; pixels are [B, in_channels, H, W] with H and W
// multiples of the downsample factor. It panics on shape errors and missing
// weights (Runner turns them into errors).
func Encode(s nn.Scope, cfg *Config, pixels *Node) Posterior {
	d := pixels.Shape().Dimensions
	f := cfg.DownsampleFactor()
	if len(d) != 4 || d[1] != cfg.InChannels || d[2]%f != 0 || d[3]%f != 0 {
		panic(fmt.Errorf("vae encode: pixels shape %v, want [B, %d, H, W] with H and W multiples of %d",
			d, cfg.InChannels, f))
	}
	m := model{cfg: cfg}
	e := s.In("encoder")
	boc := cfg.BlockOutChannels
	last := len(boc) - 1

	x := nn.Conv2d(e.In("conv_in"), pixels, 1, nn.SamePadding(3))
	for i := range boc {
		b := e.In("down_blocks", i)
		for j := range cfg.LayersPerBlock {
			x = m.resnet(b.In("resnets", j), x, boc[i])
		}
		if i < last {
			x = downsample(b.In("downsamplers", 0), x)
		}
	}
	x = m.midBlock(e.In("mid_block"), x)
	x = nn.SiLU(nn.GroupNorm(e.In("conv_norm_out"), x, cfg.NormNumGroups, normEps))
	x = nn.Conv2d(e.In("conv_out"), x, 1, nn.SamePadding(3))
	if cfg.UseQuantConv {
		x = nn.Conv2d(s.In("quant_conv"), x, 1, [4]int{})
	}
	halves := Split(x, 1, 2)
	return Posterior{Mean: halves[0], LogVar: ClipScalar(halves[1], -30, 20)}
}

// Decode builds AutoencoderKL.decode: post_quant_conv then the Decoder.
// latents are [B, latent_channels, h, w] in the VAE's own space (divide the
// diffusion latents by the scaling factor first: Config.Unscale). The output
// is unclamped pixels, about [-1, 1].
func Decode(s nn.Scope, cfg *Config, latents *Node) *Node {
	d := latents.Shape().Dimensions
	if len(d) != 4 || d[1] != cfg.LatentChannels {
		panic(fmt.Errorf("vae decode: latents shape %v, want [B, %d, h, w]", d, cfg.LatentChannels))
	}
	m := model{cfg: cfg}
	dec := s.In("decoder")
	boc := cfg.BlockOutChannels
	last := len(boc) - 1

	x := latents
	if cfg.UsePostQuantConv {
		x = nn.Conv2d(s.In("post_quant_conv"), x, 1, [4]int{})
	}
	x = nn.Conv2d(dec.In("conv_in"), x, 1, nn.SamePadding(3))
	x = m.midBlock(dec.In("mid_block"), x)
	// up_blocks run the levels in reverse, with one resnet more than the
	// encoder's and an upsampler after every level but the last.
	for i := range boc {
		b := dec.In("up_blocks", i)
		for j := range cfg.LayersPerBlock + 1 {
			x = m.resnet(b.In("resnets", j), x, boc[last-i])
		}
		if i < last {
			x = upsample(b.In("upsamplers", 0), x)
		}
	}
	x = nn.SiLU(nn.GroupNorm(dec.In("conv_norm_out"), x, cfg.NormNumGroups, normEps))
	return nn.Conv2d(dec.In("conv_out"), x, 1, nn.SamePadding(3))
}
