package vae

import (
	"fmt"

	"github.com/golcm/golcm/models/nn"
)

// ParamShapes lists every weight the config's AutoencoderKL has, by diffusers
// name, with its shape. It is the schema CheckWeights compares a checkpoint
// with.
func (c *Config) ParamShapes() map[string][]int {
	p := nn.Schema{}
	resnet := func(name string, in, out int) {
		p.Norm(name+".norm1", in)
		p.Conv(name+".conv1", in, out, 3)
		p.Norm(name+".norm2", out)
		p.Conv(name+".conv2", out, out, 3)
		if in != out {
			p.Conv(name+".conv_shortcut", in, out, 1)
		}
	}
	mid := func(name string, ch int) {
		resnet(name+".resnets.0", ch, ch)
		if c.MidBlockAddAttention {
			a := name + ".attentions.0"
			p.Norm(a+".group_norm", ch)
			for _, l := range []string{"to_q", "to_k", "to_v", "to_out.0"} {
				p.Linear(a+"."+l, ch, ch, true)
			}
		}
		resnet(name+".resnets.1", ch, ch)
	}

	boc := c.BlockOutChannels
	last := len(boc) - 1
	lat := c.LatentChannels

	p.Conv("encoder.conv_in", c.InChannels, boc[0], 3)
	ch := boc[0]
	for i := range boc {
		for j := range c.LayersPerBlock {
			resnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j), ch, boc[i])
			ch = boc[i]
		}
		if i < last {
			p.Conv(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i), ch, ch, 3)
		}
	}
	mid("encoder.mid_block", ch)
	p.Norm("encoder.conv_norm_out", ch)
	p.Conv("encoder.conv_out", ch, 2*lat, 3)
	if c.UseQuantConv {
		p.Conv("quant_conv", 2*lat, 2*lat, 1)
	}

	if c.UsePostQuantConv {
		p.Conv("post_quant_conv", lat, lat, 1)
	}
	ch = boc[last]
	p.Conv("decoder.conv_in", lat, ch, 3)
	mid("decoder.mid_block", ch)
	for i := range boc {
		level := last - i
		for j := range c.LayersPerBlock + 1 {
			resnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), ch, boc[level])
			ch = boc[level]
		}
		if i < last {
			p.Conv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), ch, ch, 3)
		}
	}
	p.Norm("decoder.conv_norm_out", boc[0])
	p.Conv("decoder.conv_out", boc[0], c.OutChannels, 3)
	return p
}
