package unet

import (
	"fmt"

	"github.com/golcm/golcm/models/nn"
)

// ParamShapes lists every weight the config's UNet has, by diffusers name,
// with its shape. It is the schema CheckWeights compares a checkpoint with
// and random initialisation fills.
func (c *Config) ParamShapes() map[string][]int {
	p := nn.Schema{}
	temb := c.TimeEmbedDim()
	resnet := func(name string, in, out int) {
		p.Norm(name+".norm1", in)
		p.Conv(name+".conv1", in, out, 3)
		p.Linear(name+".time_emb_proj", temb, out, true)
		p.Norm(name+".norm2", out)
		p.Conv(name+".conv2", out, out, 3)
		if in != out {
			p.Conv(name+".conv_shortcut", in, out, 1)
		}
	}
	transformer := func(name string, ch, cross, layers int) {
		p.Norm(name+".norm", ch)
		if c.UseLinearProjection {
			p.Linear(name+".proj_in", ch, ch, true)
			p.Linear(name+".proj_out", ch, ch, true)
		} else {
			p.Conv(name+".proj_in", ch, ch, 1)
			p.Conv(name+".proj_out", ch, ch, 1)
		}
		for k := range layers {
			b := fmt.Sprintf("%s.transformer_blocks.%d", name, k)
			for _, a := range []struct {
				name string
				ctx  int
			}{{"attn1", ch}, {"attn2", cross}} {
				p.Linear(b+"."+a.name+".to_q", ch, ch, false)
				p.Linear(b+"."+a.name+".to_k", a.ctx, ch, false)
				p.Linear(b+"."+a.name+".to_v", a.ctx, ch, false)
				p.Linear(b+"."+a.name+".to_out.0", ch, ch, true)
			}
			for _, n := range []string{"norm1", "norm2", "norm3"} {
				p.Norm(b+"."+n, ch)
			}
			p.Linear(b+".ff.net.0.proj", ch, ch*8, true)
			p.Linear(b+".ff.net.2", ch*4, ch, true)
		}
	}

	boc := c.BlockOutChannels
	p.Conv("conv_in", c.InChannels, boc[0], c.ConvInKernel)
	p.Linear("time_embedding.linear_1", boc[0], temb, true)
	p.Linear("time_embedding.linear_2", temb, temb, true)
	if c.TimeCondProjDim != nil {
		p.Linear("time_embedding.cond_proj", *c.TimeCondProjDim, boc[0], false)
	}
	if c.TextTime() {
		p.Linear("add_embedding.linear_1", *c.ProjectionClassEmbedsDim, temb, true)
		p.Linear("add_embedding.linear_2", temb, temb, true)
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
			p.Conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), ch, ch, 3)
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
			p.Conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i), ch, ch, 3)
		}
	}
	p.Norm("conv_norm_out", boc[0])
	p.Conv("conv_out", boc[0], c.OutChannels, c.ConvOutKernel)
	return p
}

// NumParams is how many weights (float values) the config's UNet has.
func (c *Config) NumParams() int {
	n := 0
	for _, dims := range c.ParamShapes() {
		size := 1
		for _, d := range dims {
			size *= d
		}
		n += size
	}
	return n
}
