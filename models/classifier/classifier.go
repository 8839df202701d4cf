package classifier

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math

	"github.com/golcm/golcm/models/nn"
)

// ParamShapes is the weight schema by name: convs.i (3×3), features and
// head (Linear).
func (c *Config) ParamShapes() map[string][]int {
	s := nn.Schema{}
	in := c.InChannels
	for i, ch := range c.Channels {
		s.Conv(fmt.Sprintf("convs.%d", i), in, ch, 3)
		in = ch
	}
	s.Linear("features", c.flatDim(), c.FeatureDim, true)
	s.Linear("head", c.FeatureDim, c.NumClasses(), true)
	return s
}

// Forward runs the network on images x [B, InChannels, ImageSize,
// ImageSize] with values in [-1, 1]: each convolution is 3×3 with stride 2
// and padding 1, then ReLU; the flattened maps go through the feature
// layer and ReLU (features [B, FeatureDim]) and the head (logits
// [B, classes]).
func Forward(s nn.Scope, c *Config, x *Node) (features, logits *Node) {
	d := x.Shape().Dimensions
	if len(d) != 4 || d[1] != c.InChannels || d[2] != c.ImageSize || d[3] != c.ImageSize {
		panic(fmt.Errorf("classifier: input %v, want [B, %d, %d, %d]", d, c.InChannels, c.ImageSize, c.ImageSize))
	}
	h := x
	for i := range c.Channels {
		h = relu(nn.Conv2d(s.In("convs", i), h, 2, nn.SamePadding(3)))
	}
	h = Reshape(h, d[0], c.flatDim())
	features = relu(nn.Linear(s.In("features"), h))
	return features, nn.Linear(s.In("head"), features)
}

func relu(x *Node) *Node { return MaxScalar(x, 0) }

// CrossEntropy is torch.nn.functional.cross_entropy of logits [B, K]
// against one-hot targets [B, K], averaged over the batch.
func CrossEntropy(logits, onehot *Node) *Node {
	return Neg(ReduceAllMean(ReduceSum(Mul(LogSoftmax(logits, -1), onehot), -1)))
}
