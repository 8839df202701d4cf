package classifier

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/nn"
)

// DefaultBatch is how many images a Runner classifies per call.
const DefaultBatch = 256

// Runner classifies host images with one compiled forward pass. It reads
// the model's weights at every call, so a training loop may update them.
type Runner struct {
	model *Model
	prog  *nn.Program
	batch int
}

// NewRunner prepares inference in batches of batch images (0: DefaultBatch).
func NewRunner(b compute.Backend, m *Model, opts nn.Options, batch int) (*Runner, error) {
	if batch <= 0 {
		batch = DefaultBatch
	}
	prog, err := nn.Compile(b, []*nn.Weights{m.Weights}, opts, func(g []*nn.Params, in []*Node) []*Node {
		features, logits := Forward(g[0].Root(""), m.Config, in[0])
		return []*Node{features, logits}
	})
	if err != nil {
		return nil, fmt.Errorf("classifier: %w", err)
	}
	return &Runner{model: m, prog: prog, batch: batch}, nil
}

// Finalize frees the compiled program.
func (r *Runner) Finalize() { r.prog.Finalize() }

// Output is what the classifier says of n images.
type Output struct {
	Features []float32 // [n, FeatureDim]
	Logits   []float32 // [n, classes]
}

// Predict runs images [n, InChannels, ImageSize, ImageSize] (values in
// [-1, 1]) in fixed-size batches, the last one zero-padded so that one
// compiled shape serves every call.
func (r *Runner) Predict(images []float32) (*Output, error) {
	c := r.model.Config
	per := c.InChannels * c.ImageSize * c.ImageSize
	if len(images) == 0 || len(images)%per != 0 {
		return nil, fmt.Errorf("classifier: %d values are not images of %d×%d×%d", len(images), c.InChannels, c.ImageSize, c.ImageSize)
	}
	n := len(images) / per
	out := &Output{Features: make([]float32, 0, n*c.FeatureDim), Logits: make([]float32, 0, n*c.NumClasses())}
	chunk := make([]float32, r.batch*per) // copied into each batch's tensor, so reused
	for start := 0; start < n; start += r.batch {
		count := min(r.batch, n-start)
		clear(chunk[copy(chunk, images[start*per:(start+count)*per]):])
		x := tensors.FromFlatDataAndDimensions(chunk, r.batch, c.InChannels, c.ImageSize, c.ImageSize)
		outs, err := r.prog.Run(x)
		if err != nil {
			return nil, fmt.Errorf("classifier: %w", err)
		}
		f, _, err := nn.TensorFloat32(outs[0])
		if err != nil {
			return nil, err
		}
		l, _, err := nn.TensorFloat32(outs[1])
		if err != nil {
			return nil, err
		}
		out.Features = append(out.Features, f[:count*c.FeatureDim]...)
		out.Logits = append(out.Logits, l[:count*c.NumClasses()]...)
	}
	return out, nil
}

// Config is the classifier's architecture.
func (r *Runner) Config() *Config { return r.model.Config }
