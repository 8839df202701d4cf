package vae

import "fmt"

// ParamShapes lists every weight the config's AutoencoderKL has, by diffusers
// name, with its shape. It is the schema CheckWeights compares a checkpoint
// with.
func (c *Config) ParamShapes() map[string][]int {
	p := map[string][]int{}
	linear := func(name string, in, out int) {
		p[name+".weight"] = []int{out, in}
		p[name+".bias"] = []int{out}
	}
	conv := func(name string, in, out, k int) {
		p[name+".weight"] = []int{out, in, k, k}
		p[name+".bias"] = []int{out}
	}
	norm := func(name string, ch int) {
		p[name+".weight"] = []int{ch}
		p[name+".bias"] = []int{ch}
	}
	resnet := func(name string, in, out int) {
		norm(name+".norm1", in)
		conv(name+".conv1", in, out, 3)
		norm(name+".norm2", out)
		conv(name+".conv2", out, out, 3)
		if in != out {
			conv(name+".conv_shortcut", in, out, 1)
		}
	}
	mid := func(name string, ch int) {
		resnet(name+".resnets.0", ch, ch)
		if c.MidBlockAddAttention {
			a := name + ".attentions.0"
			norm(a+".group_norm", ch)
			for _, l := range []string{"to_q", "to_k", "to_v", "to_out.0"} {
				linear(a+"."+l, ch, ch)
			}
		}
		resnet(name+".resnets.1", ch, ch)
	}

	boc := c.BlockOutChannels
	last := len(boc) - 1
	lat := c.LatentChannels

	conv("encoder.conv_in", c.InChannels, boc[0], 3)
	ch := boc[0]
	for i := range boc {
		for j := range c.LayersPerBlock {
			resnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j), ch, boc[i])
			ch = boc[i]
		}
		if i < last {
			conv(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i), ch, ch, 3)
		}
	}
	mid("encoder.mid_block", ch)
	norm("encoder.conv_norm_out", ch)
	conv("encoder.conv_out", ch, 2*lat, 3)
	if c.UseQuantConv {
		conv("quant_conv", 2*lat, 2*lat, 1)
	}

	if c.UsePostQuantConv {
		conv("post_quant_conv", lat, lat, 1)
	}
	ch = boc[last]
	conv("decoder.conv_in", lat, ch, 3)
	mid("decoder.mid_block", ch)
	for i := range boc {
		level := last - i
		for j := range c.LayersPerBlock + 1 {
			resnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), ch, boc[level])
			ch = boc[level]
		}
		if i < last {
			conv(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i), ch, ch, 3)
		}
	}
	norm("decoder.conv_norm_out", boc[0])
	conv("decoder.conv_out", boc[0], c.OutChannels, 3)
	return p
}
