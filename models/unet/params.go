package unet

import "fmt"

// ParamShapes lists every weight the config's UNet has, by diffusers name,
// with its shape. It is the schema CheckWeights compares a checkpoint with
// and random initialisation fills.
func (c *Config) ParamShapes() map[string][]int {
	p := map[string][]int{}
	linear := func(name string, in, out int, bias bool) {
		p[name+".weight"] = []int{out, in}
		if bias {
			p[name+".bias"] = []int{out}
		}
	}
	conv := func(name string, in, out, k int) {
		p[name+".weight"] = []int{out, in, k, k}
		p[name+".bias"] = []int{out}
	}
	norm := func(name string, ch int) {
		p[name+".weight"] = []int{ch}
		p[name+".bias"] = []int{ch}
	}
	temb := c.TimeEmbedDim()
	resnet := func(name string, in, out int) {
		norm(name+".norm1", in)
		conv(name+".conv1", in, out, 3)
		linear(name+".time_emb_proj", temb, out, true)
		norm(name+".norm2", out)
		conv(name+".conv2", out, out, 3)
		if in != out {
			conv(name+".conv_shortcut", in, out, 1)
		}
	}
	transformer := func(name string, ch, cross, layers int) {
		norm(name+".norm", ch)
		if c.UseLinearProjection {
			linear(name+".proj_in", ch, ch, true)
			linear(name+".proj_out", ch, ch, true)
		} else {
			conv(name+".proj_in", ch, ch, 1)
			conv(name+".proj_out", ch, ch, 1)
		}
		for k := range layers {
			b := fmt.Sprintf("%s.transformer_blocks.%d", name, k)
			for _, a := range []struct {
				name string
				ctx  int
			}{{"attn1", ch}, {"attn2", cross}} {
				linear(b+"."+a.name+".to_q", ch, ch, false)
				linear(b+"."+a.name+".to_k", a.ctx, ch, false)
				linear(b+"."+a.name+".to_v", a.ctx, ch, false)
				linear(b+"."+a.name+".to_out.0", ch, ch, true)
			}
			for _, n := range []string{"norm1", "norm2", "norm3"} {
				norm(b+"."+n, ch)
			}
			linear(b+".ff.net.0.proj", ch, ch*8, true)
			linear(b+".ff.net.2", ch*4, ch, true)
		}
	}

	boc := c.BlockOutChannels
	conv("conv_in", c.InChannels, boc[0], c.ConvInKernel)
	linear("time_embedding.linear_1", boc[0], temb, true)
	linear("time_embedding.linear_2", temb, temb, true)
	if c.TimeCondProjDim != nil {
		linear("time_embedding.cond_proj", *c.TimeCondProjDim, boc[0], false)
	}
	if c.TextTime() {
		linear("add_embedding.linear_1", *c.ProjectionClassEmbedsDim, temb, true)
		linear("add_embedding.linear_2", temb, temb, true)
	}
	ch := boc[0]
	skips := []int{ch}
	for i, typ := range c.DownBlockTypes {
		for j := range c.Layers[i] {
			name := fmt.Sprintf("down_blocks.%d.resnets.%d", i, j)
			resnet(name, ch, boc[i])
			ch = boc[i]
			if typ == "CrossAttnDownBlock2D" {
				transformer(fmt.Sprintf("down_blocks.%d.attentions.%d", i, j), ch, c.CrossDims[i], c.Transformer[i])
			}
			skips = append(skips, ch)
		}
		if i < len(boc)-1 {
			conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), ch, ch, 3)
			skips = append(skips, ch)
		}
	}
	last := len(boc) - 1
	resnet("mid_block.resnets.0", ch, ch)
	transformer("mid_block.attentions.0", ch, c.CrossDims[last], c.Transformer[last])
	resnet("mid_block.resnets.1", ch, ch)
	for i, typ := range c.UpBlockTypes {
		level := last - i
		for j := range c.Layers[level] + 1 {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			resnet(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), ch+skip, boc[level])
			ch = boc[level]
			if typ == "CrossAttnUpBlock2D" {
				transformer(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j), ch, c.CrossDims[level], c.ReverseTr[i])
			}
		}
		if i < len(boc)-1 {
			conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), ch, ch, 3)
		}
	}
	norm("conv_norm_out", boc[0])
	conv("conv_out", boc[0], c.OutChannels, c.ConvOutKernel)
	return p
}
