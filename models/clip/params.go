package clip

import (
	"fmt"

	"github.com/golcm/golcm/models/nn"
)

// ParamShapes lists every weight the config's text encoder has, by
// transformers state-dict name, with its shape. It is the schema
// CheckWeights compares a checkpoint with.
func (c *Config) ParamShapes() map[string][]int {
	p := nn.Schema{}
	d := c.HiddenSize
	p["text_model.embeddings.token_embedding.weight"] = []int{c.VocabSize, d}
	p["text_model.embeddings.position_embedding.weight"] = []int{c.MaxPositionEmbeddings, d}
	for i := range c.NumHiddenLayers {
		l := fmt.Sprintf("text_model.encoder.layers.%d", i)
		p.Norm(l+".layer_norm1", d)
		for _, proj := range []string{"q_proj", "k_proj", "v_proj", "out_proj"} {
			p.Linear(l+".self_attn."+proj, d, d, true)
		}
		p.Norm(l+".layer_norm2", d)
		p.Linear(l+".mlp.fc1", d, c.IntermediateSize, true)
		p.Linear(l+".mlp.fc2", c.IntermediateSize, d, true)
	}
	p.Norm("text_model.final_layer_norm", d)
	if c.WithProjection {
		p["text_projection.weight"] = []int{c.ProjectionDim, d} // no bias
	}
	return p
}
