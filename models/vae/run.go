package vae

import (
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read as math
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/models/nn"
)

// HostPosterior is a Posterior on the host: Mean and LogVar (clamped) as
// [B, latent_channels, h, w] float32 tensors.
type HostPosterior struct {
	Mean, LogVar *tensors.Tensor
}

// Runner runs the VAE as its own compiled programs, a chunk of the batch at
// a time, so a large batch never holds every activation at once (the
// training scripts' vae_encode_batch_size).
type Runner struct {
	backend  compute.Backend
	model    *Model
	opts     nn.Options
	programs map[string]*nn.Program
}

// NewRunner prepares encode and decode passes of m on backend b.
func NewRunner(b compute.Backend, m *Model, opts nn.Options) *Runner {
	return &Runner{backend: b, model: m, opts: opts, programs: map[string]*nn.Program{}}
}

// Encode computes the posterior of pixels [B, in_channels, H, W] (values in
// [-1, 1]), chunk images at a time (chunk <= 0: all at once).
func (r *Runner) Encode(pixels *tensors.Tensor, chunk int) (*HostPosterior, error) {
	outs, err := r.run("encode", r.model.EncoderWeights, chunk, []*tensors.Tensor{pixels}, func(s nn.Scope, xs []*Node) []*Node {
		p := Encode(s, r.model.Config, xs[0])
		return []*Node{p.Mean, p.LogVar}
	})
	if err != nil {
		return nil, err
	}
	return &HostPosterior{Mean: outs[0], LogVar: outs[1]}, nil
}

// EncodeLatents encodes pixels straight to the diffusion model's latent
// space: Latents(Sample(noise)), or Latents(Mode()) when noise is nil.
// noise is [B, latent_channels, h, w].
func (r *Runner) EncodeLatents(pixels, noise *tensors.Tensor, chunk int) (*tensors.Tensor, error) {
	cfg := r.model.Config
	inputs, key := []*tensors.Tensor{pixels}, "latents-mode"
	if noise != nil {
		inputs, key = append(inputs, noise), "latents-sample"
	}
	outs, err := r.run(key, r.model.EncoderWeights, chunk, inputs, func(s nn.Scope, xs []*Node) []*Node {
		p := Encode(s, cfg, xs[0])
		x := p.Mode()
		if len(xs) > 1 {
			x = p.Sample(xs[1])
		}
		return []*Node{cfg.Latents(x)}
	})
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// Decode decodes latents in the VAE's own space [B, latent_channels, h, w]
// to unclamped pixels, chunk at a time (chunk <= 0: all at once).
func (r *Runner) Decode(latents *tensors.Tensor, chunk int) (*tensors.Tensor, error) {
	outs, err := r.run("decode", r.model.DecoderWeights, chunk, []*tensors.Tensor{latents}, func(s nn.Scope, xs []*Node) []*Node {
		return []*Node{Decode(s, r.model.Config, xs[0])}
	})
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// DecodeLatents decodes latents in the diffusion model's space: Unscale then
// Decode, as a pipeline does with its final latents.
func (r *Runner) DecodeLatents(latents *tensors.Tensor, chunk int) (*tensors.Tensor, error) {
	cfg := r.model.Config
	outs, err := r.run("decode-latents", r.model.DecoderWeights, chunk, []*tensors.Tensor{latents}, func(s nn.Scope, xs []*Node) []*Node {
		return []*Node{Decode(s, cfg, cfg.Unscale(xs[0]))}
	})
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

// Finalize frees the compiled programs.
func (r *Runner) Finalize() {
	for k, p := range r.programs {
		p.Finalize()
		delete(r.programs, k)
	}
}

// run compiles (once per key) a program over the weights part gives and runs
// it on chunks of the inputs' batch axis, concatenating each output on the
// host. All inputs must share the batch size.
func (r *Runner) run(key string, part func() *nn.Weights, chunk int, inputs []*tensors.Tensor, build func(s nn.Scope, xs []*Node) []*Node) ([]*tensors.Tensor, error) {
	prog, ok := r.programs[key]
	if !ok {
		var err error
		prog, err = nn.Compile(r.backend, []*nn.Weights{part()}, r.opts, func(groups []*nn.Params, xs []*Node) []*Node {
			return build(groups[0].ForwardOnly().Root(""), xs)
		})
		if err != nil {
			return nil, fmt.Errorf("vae %s: %w", key, err)
		}
		r.programs[key] = prog
	}
	batch := inputs[0].Shape().Dimensions[0]
	for _, t := range inputs[1:] {
		if t.Shape().Dimensions[0] != batch {
			return nil, fmt.Errorf("vae %s: inputs have batch sizes %d and %d", key, batch, t.Shape().Dimensions[0])
		}
	}
	if chunk <= 0 || chunk >= batch {
		outs, err := prog.Run(inputs...)
		if err != nil {
			return nil, fmt.Errorf("vae %s: %w", key, err)
		}
		return outs, nil
	}
	flat := make([][]float32, len(inputs))
	for i, t := range inputs {
		data, _, err := nn.TensorFloat32(t)
		if err != nil {
			return nil, fmt.Errorf("vae %s: input %d: %w", key, i, err)
		}
		flat[i] = data
	}
	var results [][]float32
	var resultDims [][]int
	for start := 0; start < batch; start += chunk {
		end := min(start+chunk, batch)
		args := make([]*tensors.Tensor, len(inputs))
		for i, t := range inputs {
			dims := append([]int{end - start}, t.Shape().Dimensions[1:]...)
			per := len(flat[i]) / batch
			args[i] = tensors.FromFlatDataAndDimensions(flat[i][start*per:end*per], dims...)
		}
		outs, err := prog.Run(args...)
		if err != nil {
			return nil, fmt.Errorf("vae %s: images %d..%d: %w", key, start, end-1, err)
		}
		if results == nil {
			results = make([][]float32, len(outs))
			resultDims = make([][]int, len(outs))
		}
		for o, t := range outs {
			data, dims, err := nn.TensorFloat32(t)
			if err != nil {
				return nil, fmt.Errorf("vae %s: output %d: %w", key, o, err)
			}
			if err := t.FinalizeAll(); err != nil {
				return nil, fmt.Errorf("vae %s: output %d: %w", key, o, err)
			}
			results[o] = append(results[o], data...)
			resultDims[o] = dims
		}
	}
	outs := make([]*tensors.Tensor, len(results))
	for o, data := range results {
		dims := append([]int{batch}, resultDims[o][1:]...)
		outs[o] = tensors.FromFlatDataAndDimensions(data, dims...)
	}
	return outs, nil
}
