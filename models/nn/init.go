package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
)

// RandomWeights fills a parameter schema (name → shape) the way PyTorch
// initialises fresh modules: Linear and Conv weights and their biases
// uniform in ±1/sqrt(fan_in) (kaiming_uniform with a=√5), norm weights one
// and norm biases zero, embeddings standard normal scaled by std. Names are
// visited in sorted order so a seed always gives the same weights.
func RandomWeights(schema map[string][]int, seed uint64, embeddingStd float64) *Weights {
	w, err := RandomWeightsOn(nil, schema, seed, embeddingStd)
	if err != nil {
		panic(err) // host tensors: nothing can fail
	}
	return w
}

// RandomWeightsOn is RandomWeights drawn straight into b's buffers where b
// has shared buffers (see NewFloat32On): no host copy is made.
func RandomWeightsOn(b compute.Backend, schema map[string][]int, seed uint64, embeddingStd float64) (*Weights, error) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	names := make([]string, 0, len(schema))
	for n := range schema {
		names = append(names, n)
	}
	sort.Strings(names)
	w := NewWeights()
	for _, name := range names {
		dims := schema[name]
		module, kind := splitLast(name)
		sibling := schema[module+".weight"]
		t, err := NewFloat32On(b, dims, func(data []float32) error {
			fillRandom(rng, data, dims, module, kind, sibling, embeddingStd)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("random weight %s: %w", name, err)
		}
		w.Set(name, t)
	}
	return w, nil
}

// fillRandom draws one weight's values (see RandomWeights).
func fillRandom(rng *rand.Rand, data []float32, dims []int, module, kind string, sibling []int, embeddingStd float64) {
	switch {
	case strings.HasSuffix(module, "embedding") || strings.HasSuffix(module, "embeddings"):
		for i := range data {
			data[i] = float32(rng.NormFloat64() * embeddingStd)
		}
	case kind == "weight" && len(dims) >= 2:
		fillUniform(rng, data, 1/math.Sqrt(float64(FanIn(dims))))
	case kind == "weight" && len(dims) == 1: // a norm's scale
		for i := range data {
			data[i] = 1
		}
	case kind == "bias" && len(sibling) >= 2:
		fillUniform(rng, data, 1/math.Sqrt(float64(FanIn(sibling))))
	default: // norm biases and anything else start at zero
		clear(data)
	}
}

// FanIn is a weight's input size: in_features, or in_channels·kh·kw.
func FanIn(dims []int) int {
	fan := 1
	for _, d := range dims[1:] {
		fan *= d
	}
	return fan
}

// KaimingUniform returns PyTorch's default Linear/Conv weight init for dims:
// uniform in ±1/sqrt(fan_in).
func KaimingUniform(rng *rand.Rand, dims []int) []float32 {
	size := 1
	for _, d := range dims {
		size *= d
	}
	data := make([]float32, size)
	fillUniform(rng, data, 1/math.Sqrt(float64(FanIn(dims))))
	return data
}

func fillUniform(rng *rand.Rand, data []float32, bound float64) {
	for i := range data {
		data[i] = float32((rng.Float64()*2 - 1) * bound)
	}
}

func splitLast(name string) (module, last string) {
	i := strings.LastIndex(name, ".")
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// NormalTensor is a float32 tensor of standard normal draws from rng, for
// inputs of benchmarks and tests.
func NormalTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	size := 1
	for _, d := range dims {
		size *= d
	}
	x := make([]float32, size)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(x, dims...)
}
