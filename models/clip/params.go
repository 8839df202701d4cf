package clip

import "fmt"

// ParamShapes lists every weight the config's text encoder has, by
// transformers state-dict name, with its shape. It is the schema
// CheckWeights compares a checkpoint with.
func (c *Config) ParamShapes() map[string][]int {
	p := map[string][]int{}
	linear := func(name string, in, out int) {
		p[name+".weight"] = []int{out, in}
		p[name+".bias"] = []int{out}
	}
	norm := func(name string, ch int) {
		p[name+".weight"] = []int{ch}
		p[name+".bias"] = []int{ch}
	}
	d := c.HiddenSize
	p["text_model.embeddings.token_embedding.weight"] = []int{c.VocabSize, d}
	p["text_model.embeddings.position_embedding.weight"] = []int{c.MaxPositionEmbeddings, d}
	for i := range c.NumHiddenLayers {
		l := fmt.Sprintf("text_model.encoder.layers.%d", i)
		norm(l+".layer_norm1", d)
		for _, proj := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			linear(l+".self_attn."+proj, d, d)
		}
		norm(l+".layer_norm2", d)
		linear(l+".mlp.fc1", d, c.IntermediateSize)
		linear(l+".mlp.fc2", c.IntermediateSize, d)
	}
	norm("text_model.final_layer_norm", d)
	if c.WithProjection {
		p["text_projection.weight"] = []int{c.ProjectionDim, d} // no bias
	}
	return p
}
