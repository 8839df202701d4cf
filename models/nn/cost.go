package nn

import (
	"regexp"
	"strconv"
	"strings"
	"sync"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
)

// Cost counts the floating-point operations of the products (DotGeneral,
// convolutions, fused dense layers and attention) that Programs compiled with it run: the
// work a matmul rate bounds. Element-wise ops, reductions and copies are
// not counted; they are a few percent of a UNet's arithmetic.
type Cost struct {
	mu    sync.Mutex
	flops float64
}

// FLOPs is the total counted since the last Reset.
func (c *Cost) FLOPs() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flops
}

// Reset zeroes the count.
func (c *Cost) Reset() {
	c.mu.Lock()
	c.flops = 0
	c.mu.Unlock()
}

func (c *Cost) add(f float64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.flops += f
	c.mu.Unlock()
}

var (
	lhsContracting = regexp.MustCompile(`lhsContractingAxes=\[([0-9 ]*)\]`)
	kernelOut      = regexp.MustCompile(`KernelOutputChannels:([0-9]+)`)
	groupCounts    = regexp.MustCompile(`channelGroupCount=([0-9]+), batchGroupCount=([0-9]+)`)
)

// GraphFLOPs counts the product FLOPs of the graph that computes outputs,
// visiting only the nodes they depend on (what the backend runs after
// dead-code elimination): 2·|out|·K for a DotGeneral contracting K
// elements, 2·|out|·|kernel|/(out channels) for an ungrouped convolution,
// 4·B·h·N·M·d for a fused attention.
func GraphFLOPs(outputs []*Node) float64 {
	seen := map[*Node]bool{}
	stack := append([]*Node(nil), outputs...)
	total := 0.0
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == nil || seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, n.Inputs()...)
		total += nodeFLOPs(n)
	}
	return total
}

func nodeFLOPs(n *Node) float64 {
	in := n.Inputs()
	switch n.Type() {
	case NodeTypeDotGeneral:
		m := lhsContracting.FindStringSubmatch(n.String())
		if m == nil || len(in) < 1 {
			return 0
		}
		k := 1.0
		for _, f := range strings.Fields(m[1]) {
			axis, _ := strconv.Atoi(f)
			k *= float64(in[0].Shape().Dimensions[axis])
		}
		return 2 * float64(n.Shape().Size()) * k
	case NodeTypeConvGeneral:
		s := n.String()
		m, g := kernelOut.FindStringSubmatch(s), groupCounts.FindStringSubmatch(s)
		if m == nil || g == nil || g[1] != "1" || g[2] != "1" || len(in) < 2 {
			return 0
		}
		axis, _ := strconv.Atoi(m[1])
		kernel := in[1].Shape()
		return 2 * float64(n.Shape().Size()) * float64(kernel.Size()) / float64(kernel.Dimensions[axis])
	case NodeTypeFusedDense:
		// x [..., in] times the weight: 2·in per output element (the bias
		// and activation are not products).
		if len(in) < 1 {
			return 0
		}
		x := in[0].Shape()
		return 2 * float64(n.Shape().Size()) * float64(x.Dimensions[x.Rank()-1])
	case NodeTypeFusedScaledDotProductAttention:
		if len(in) < 2 || in[0].Rank() != 4 {
			return 0
		}
		// Attention's BSHD layout: q [B,N,h,d], k [B,M,h,d].
		q, k := in[0].Shape().Dimensions, in[1].Shape().Dimensions
		return 4 * float64(q[0]) * float64(q[2]) * float64(q[1]) * float64(k[1]) * float64(q[3])
	}
	return 0
}
