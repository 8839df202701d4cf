package lora_test

import (
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// tinyLinearUNet is the fixture teacher's shape with SDXL's linear
// proj_in/proj_out, so both kinds of transformer projection are covered.
const tinyLinearUNet = `{
  "block_out_channels": [4, 8],
  "layers_per_block": 1,
  "attention_head_dim": 2,
  "cross_attention_dim": 6,
  "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
  "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
  "norm_num_groups": 2,
  "use_linear_projection": true,
  "in_channels": 4, "out_channels": 4
}`

// testModel is a UNet the tests run, with inputs that fit it.
type testModel struct {
	name  string
	model *unet.Model
	in    []*tensors.Tensor // sample, timesteps, context
}

// randomUNet builds a UNet from a config literal with seeded random weights.
func randomUNet(t *testing.T, name, config string) *unet.Model {
	t.Helper()
	cfg, err := unet.ParseConfig([]byte(config), name)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	w := nn.NewWeights()
	shapes := cfg.ParamShapes()
	for _, name := range slices.Sorted(maps.Keys(shapes)) {
		dims := shapes[name]
		data := make([]float32, size(dims))
		for i := range data {
			data[i] = float32(rng.Float64()*0.6 - 0.3)
			if len(dims) == 1 && strings.HasSuffix(name, ".weight") { // norm scales near 1
				data[i] += 1
			}
		}
		w.SetFloat32(name, data, dims...)
	}
	return &unet.Model{Config: cfg, Weights: w}
}

// testModels are the fixture's tiny SD teacher UNet (when the fixtures are
// there) and a random tiny UNet with linear projections.
func testModels(t *testing.T) []testModel {
	t.Helper()
	var models []*unet.Model
	var names []string
	dir := filepath.Join(golden.Dir(), "tiny-sd-teacher", "unet")
	if _, err := os.Stat(dir); err == nil {
		m, err := unet.Load(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		models, names = append(models, m), append(names, "tiny-sd-teacher")
	} else {
		t.Logf("fixture UNet not found at %s; testing the random UNet only", dir)
	}
	models, names = append(models, randomUNet(t, "tiny-linear", tinyLinearUNet)), append(names, "tiny-linear")
	var out []testModel
	for i, m := range models {
		rng := rand.New(rand.NewPCG(3, uint64(i)))
		ctx := m.Config.CrossDims[0]
		out = append(out, testModel{name: names[i], model: m, in: []*tensors.Tensor{
			randomTensor(rng, 1, 2, m.Config.InChannels, 8, 8),
			tensors.FromFlatDataAndDimensions([]int64{10, 700}, 2),
			randomTensor(rng, 1, 2, 5, ctx),
		}})
	}
	return out
}

func randomTensor(rng *rand.Rand, scale float64, dims ...int) *tensors.Tensor {
	data := make([]float32, size(dims))
	for i := range data {
		data[i] = float32(rng.NormFloat64() * scale)
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

func size(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

func testBackend(t *testing.T) compute.Backend {
	t.Helper()
	b, _, err := backend.Default("go")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forward runs the UNet on m's inputs with base weights and, when a is not
// nil, its adapters bound the way a training step binds them.
func forward(t *testing.T, b compute.Backend, m testModel, base *nn.Weights, a *lora.Adapters, opts nn.Options) []float32 {
	t.Helper()
	groups := []*nn.Weights{base}
	if a != nil {
		groups = append(groups, a.Weights)
	}
	prog, err := nn.Compile(b, groups, opts, func(g []*nn.Params, xs []*Node) []*Node {
		p := g[0]
		if a != nil {
			p = p.WithAdapters(a.Lookup(g[1]))
		}
		in := unet.Inputs{Sample: xs[0], Timesteps: xs[1], Context: xs[2]}
		return []*Node{unet.Forward(p.Root(""), m.model.Config, in)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Finalize()
	outs, err := prog.Run(m.in...)
	if err != nil {
		t.Fatalf("%s: %v", m.name, err)
	}
	got, _, err := nn.TensorFloat32(outs[0])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// randomizeUp gives every lora_B seeded normal values of the given scale.
func randomizeUp(t *testing.T, a *lora.Adapters, seed uint64, scale float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 9))
	for _, m := range a.Modules {
		a.Weights.Set(lora.ParamB(m.Name), randomTensor(rng, scale, m.BShape()...))
	}
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func maxAbs(a []float32) float64 {
	d := 0.0
	for _, v := range a {
		d = math.Max(d, math.Abs(float64(v)))
	}
	return d
}
