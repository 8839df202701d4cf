package sampling

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/lcm"
	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/models/unet"
)

func testBackend(t *testing.T) (compute.Backend, nn.Options) {
	t.Helper()
	b, choice, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	return b, nn.Options{ConvIm2Col: choice.Name() == "go"}
}

func newSampler(t *testing.T, b compute.Backend, p *pipeline.Pipeline, student *unet.Model, a *lora.Adapters, opts nn.Options) *Sampler {
	t.Helper()
	s, err := NewSampler(b, p, student, a, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Finalize)
	return s
}

func sample(t *testing.T, s *Sampler, req SampleRequest) *SampleResult {
	t.Helper()
	res, err := s.Sample(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// pipeCall is the sidecar's record of the diffusers pipeline call.
type pipeCall struct {
	Prompt                 string  `json:"prompt"`
	NumInferenceSteps      int     `json:"num_inference_steps"`
	GuidanceScale          float64 `json:"guidance_scale"`
	GeneratorSeed          uint64  `json:"generator_seed"`
	OriginalInferenceSteps int     `json:"original_inference_steps"`
	Timesteps              []int64 `json:"timesteps"`
}

// TestGoldenLCMPipeline replays diffusers' LatentConsistencyModelPipeline
// call of every sidecar with pipe.* entries: the same prompt, steps,
// guidance, initial latents and per-step noise (torch's generator is not
// reproduced, so the recorded draws are fed in), checking the prompt
// embedding, the guidance embedding, every step's denoised and latents, the
// decoded latents and the image. Plain float32: the UNet alone matches to
// ~1e-6 and the steps compound that well inside the fixtures' 1e-4.
func TestGoldenLCMPipeline(t *testing.T) {
	b, opts := testBackend(t)
	for _, s := range golden.Sidecars(t) {
		if !s.Has("pipe.latents_in") {
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			var call pipeCall
			if err := json.Unmarshal(s.Raw["pipe_call"], &call); err != nil {
				t.Fatalf("pipe_call: %v", err)
			}
			p, err := pipeline.Load(s.ModelDir, "", "", "")
			if err != nil {
				t.Fatal(err)
			}
			latents, shape := s.Float32(t, "pipe.latents_in")
			f := p.VAEScaleFactor()
			res := sample(t, newSampler(t, b, p, nil, nil, opts), SampleRequest{
				Prompts:       []string{call.Prompt},
				Steps:         call.NumInferenceSteps,
				OriginalSteps: call.OriginalInferenceSteps,
				Guidance:      call.GuidanceScale,
				Seed:          call.GeneratorSeed,
				Height:        shape[2] * f,
				Width:         shape[3] * f,
				InitNoise:     latents,
				StepNoise: func(k int) []float32 {
					noise, _ := s.Float32(t, fmt.Sprintf("pipe.step%d.noise", k))
					return noise
				},
			})
			if !slices.Equal(res.Timesteps, call.Timesteps) {
				t.Errorf("timesteps %v, want %v", res.Timesteps, call.Timesteps)
			}
			// Inputs without a tolerance of their own: the prompt embedding is
			// CLIP's last hidden state, the w embedding a closed form.
			s.CheckFloat32Tol(t, "pipe.prompt_embeds", res.PromptEmbeds, s.Entries["pipe.prompt_embeds"].Shape,
				s.Entries["text.last_hidden_state"].Tol)
			s.CheckFloat32Tol(t, "pipe.w_embedding", res.TimestepCond, s.Entries["pipe.w_embedding"].Shape, golden.Tol{Atol: 1e-6})
			for k := range res.Timesteps {
				s.CheckFloat32(t, fmt.Sprintf("pipe.step%d.denoised", k), res.Denoised[k], shape)
				s.CheckFloat32(t, fmt.Sprintf("pipe.step%d.latents", k), res.Latents[k], shape)
			}
			s.CheckFloat32(t, "pipe.latent_out", res.Denoised[len(res.Denoised)-1], shape)
			imageShape := s.Entries["pipe.image"].Shape
			s.CheckFloat32(t, "pipe.image_raw", res.Pixels, imageShape)
			s.CheckFloat32(t, "pipe.image", DenormalizeImage(res.Pixels), imageShape)

			want, _ := s.Float32(t, "pipe.image")
			img := res.Images[0]
			if img.Bounds().Dx() != imageShape[3] || img.Bounds().Dy() != imageShape[2] {
				t.Fatalf("image %v, want %dx%d", img.Bounds(), imageShape[3], imageShape[2])
			}
			// The 8-bit image is round(v·255) of the checked values: off by
			// at most one level where v·255 is within the tolerance of .5.
			n := imageShape[2] * imageShape[3]
			for i := range n {
				for ch := range 3 {
					got, ref := float64(img.Pix[4*i+ch]), math.Round(float64(want[ch*n+i])*255)
					if math.Abs(got-ref) > 1 {
						t.Fatalf("pixel %d channel %d: %v, want %v", i, ch, got, ref)
					}
				}
			}
		})
	}
}

func tinyPipeline(t *testing.T) *pipeline.Pipeline {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := pipeline.InitTiny(dir, 11); err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Load(dir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSamplerSeedsAndImageToImage: a seed fixes the images; image to image
// starts at the strength-cut timesteps from the encoded image.
func TestSamplerSeedsAndImageToImage(t *testing.T) {
	b, opts := testBackend(t)
	p := tinyPipeline(t)
	s := newSampler(t, b, p, nil, nil, opts)
	req := SampleRequest{Prompts: []string{"a photo of a cat", "a red car"}, Steps: 2, Guidance: 1, Seed: 5}
	r1, r2 := sample(t, s, req), sample(t, s, req)
	req.Seed = 6
	r3 := sample(t, s, req)
	if len(r1.Images) != 2 || r1.Width != 64 || r1.Height != 64 || r1.Images[0].Bounds().Dx() != 64 {
		t.Fatalf("got %d images of %dx%d, want 2 of 64x64", len(r1.Images), r1.Width, r1.Height)
	}
	if !slices.Equal(r1.Images[1].Pix, r2.Images[1].Pix) || !slices.Equal(r1.Pixels, r2.Pixels) {
		t.Errorf("the same seed gave different images")
	}
	if slices.Equal(r1.InitLatents, r3.InitLatents) {
		t.Errorf("seeds 5 and 6 gave the same initial latents")
	}
	if !slices.Equal(r1.Timesteps, []int64{999, 499}) {
		t.Errorf("timesteps %v, want [999 499]", r1.Timesteps)
	}

	init := r1.Images[0]
	res := sample(t, s, SampleRequest{Prompts: []string{"a cat", "a dog"}, Steps: 4, Guidance: 1, Seed: 1, InitImage: init, Strength: 0.5})
	if want := []int64{499, 379, 259, 139}; !slices.Equal(res.Timesteps, want) {
		t.Errorf("img2img timesteps %v, want %v", res.Timesteps, want)
	}
	// One posterior sample, repeated for every prompt, then per-prompt noise.
	half := len(res.InitLatents) / 2
	if slices.Equal(res.InitLatents[:half], res.InitLatents[half:]) {
		t.Errorf("img2img: both prompts start from the same noisy latents")
	}
	if _, err := s.Sample(SampleRequest{Prompts: []string{"x"}, InitImage: init}); err == nil {
		t.Errorf("img2img without strength: no error")
	}
	if _, err := s.Sample(SampleRequest{Prompts: []string{"x"}, Width: 60, Height: 64}); err == nil {
		t.Errorf("width 60: no error")
	}
}

// TestSamplerReadsWeightsEachCall: a sampler follows in-place updates of the
// UNet's weights, as validation during training needs.
func TestSamplerReadsWeightsEachCall(t *testing.T) {
	b, opts := testBackend(t)
	p := tinyPipeline(t)
	req := SampleRequest{Prompts: []string{"a cat"}, Steps: 2, Guidance: 1, Seed: 3}
	s := newSampler(t, b, p, nil, nil, opts)
	before := sample(t, s, req)
	bias, dims, err := p.UNet.Weights.Float32("conv_out.bias")
	if err != nil {
		t.Fatal(err)
	}
	for i := range bias {
		bias[i] += 0.5
	}
	p.UNet.Weights.SetFloat32("conv_out.bias", bias, dims...)
	after := sample(t, s, req)
	if golden.MaxAbsDiff(before.Denoised[0], after.Denoised[0]) < 1e-3 {
		t.Errorf("changing conv_out.bias did not change the samples")
	}
	fresh := sample(t, newSampler(t, b, p, nil, nil, opts), req)
	if !slices.Equal(fresh.Pixels, after.Pixels) {
		t.Errorf("the reused sampler and a fresh one disagree after the update")
	}
}

// TestSamplerLoRAUnfusedMatchesFused: adapters applied through the nn hook
// sample what the same adapters fused into the weights sample.
func TestSamplerLoRAUnfusedMatchesFused(t *testing.T) {
	b, opts := testBackend(t)
	p := tinyPipeline(t)
	a, err := lora.New(p.UNet.Config.ParamShapes(), lora.Config{Rank: 4, Alpha: 4}, 9)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range a.Modules { // B starts at zero; make the adapters do something
		data, dims, _ := a.Weights.Float32(lora.ParamB(m.Name))
		for i := range data {
			data[i] = float32(math.Sin(float64(i))) * 0.05
		}
		a.Weights.SetFloat32(lora.ParamB(m.Name), data, dims...)
	}
	req := SampleRequest{Prompts: []string{"a cat on a table"}, Steps: 2, Guidance: 1, Seed: 2}
	plain := sample(t, newSampler(t, b, p, nil, nil, opts), req)
	unfused := sample(t, newSampler(t, b, p, nil, a, opts), req)

	fusedWeights, err := p.UNet.Weights.Clone()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Fuse(fusedWeights); err != nil {
		t.Fatal(err)
	}
	fusedModel := &unet.Model{Config: p.UNet.Config, Weights: fusedWeights, RawConfig: p.UNet.RawConfig}
	fused := sample(t, newSampler(t, b, p, fusedModel, nil, opts), req)
	for k := range unfused.Denoised {
		d := golden.MaxAbsDiff(unfused.Denoised[k], fused.Denoised[k])
		t.Logf("step %d: |unfused - fused| = %.2g, |unfused - no lora| = %.2g", k, d, golden.MaxAbsDiff(unfused.Denoised[k], plain.Denoised[k]))
		if d > 1e-4 {
			t.Errorf("step %d: unfused and fused adapters differ by %g", k, d)
		}
	}
	if golden.MaxAbsDiff(unfused.Denoised[0], plain.Denoised[0]) < 1e-3 {
		t.Errorf("the adapters changed nothing")
	}
}

// TestSamplerSDXLGuidance: for an SD-XL UNet without a guidance embedding
// and g > 1, one step is uncond + g·(cond - uncond) of the UNet on the
// prompt and on zero embeddings (force_zeros_for_empty_prompt), with
// time_ids [H, W, 0, 0, H, W] for both halves.
func TestSamplerSDXLGuidance(t *testing.T) {
	dir := filepath.Join(golden.Dir(), "tiny-sdxl")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("fixture tiny-sdxl: %v", err)
	}
	b, opts := testBackend(t)
	p, err := pipeline.Load(dir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	const g = 5.0
	s := newSampler(t, b, p, nil, nil, opts)
	res := sample(t, s, SampleRequest{Prompts: []string{"a cat", "a dog"}, Steps: 1, Guidance: g, Seed: 4, Width: 64, Height: 48})
	if res.TimestepCond != nil {
		t.Errorf("a UNet without cond_proj got a guidance embedding")
	}
	pos, err := s.encode([]string{"a cat", "a dog"})
	if err != nil {
		t.Fatal(err)
	}
	neg := s.cond.Zeros(2, 77)
	ids := append(clip.TimeIDs(48, 64, 0, 0, 48, 64), clip.TimeIDs(48, 64, 0, 0, 48, 64)...)
	r := unet.NewRunner(b, p.UNet, opts)
	run := func(c *clip.HostConditioning) []float32 {
		out, err := r.Forward(unet.HostInputs{
			Sample:     tensors.FromFlatDataAndDimensions(res.InitLatents, 2, 4, 24, 32),
			Timesteps:  tensors.FromFlatDataAndDimensions([]int64{999, 999}, 2),
			Context:    c.Context,
			TextEmbeds: c.TextEmbeds,
			TimeIDs:    tensors.FromFlatDataAndDimensions(ids, 2, 6),
		})
		if err != nil {
			t.Fatal(err)
		}
		data, _, _ := nn.TensorFloat32(out)
		return data
	}
	cond, uncond := run(pos), run(neg)
	// δ: how far the UNet's batched run (the sampler's doubled batch,
	// diffusers' cat([negative, positive])) is from these two single runs.
	// The Go backend's packed GEMM and vectorized reductions block a product
	// by its size, so a batch of four and a batch of two round differently.
	both := func(x, y *tensors.Tensor) *tensors.Tensor {
		c, err := concatBatch(x, y)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	batched, err := r.Forward(unet.HostInputs{
		Sample:     tensors.FromFlatDataAndDimensions(append(slices.Clone(res.InitLatents), res.InitLatents...), 4, 4, 24, 32),
		Timesteps:  tensors.FromFlatDataAndDimensions([]int64{999, 999, 999, 999}, 4),
		Context:    both(neg.Context, pos.Context),
		TextEmbeds: both(neg.TextEmbeds, pos.TextEmbeds),
		TimeIDs:    tensors.FromFlatDataAndDimensions(append(slices.Clone(ids), ids...), 4, 6),
	})
	if err != nil {
		t.Fatal(err)
	}
	bdata, _, _ := nn.TensorFloat32(batched)
	n := len(cond)
	delta := max(golden.MaxAbsDiff(bdata[:n], uncond), golden.MaxAbsDiff(bdata[n:], cond))
	guided := make([]float32, len(cond))
	for i := range cond {
		guided[i] = uncond[i] + float32(g*(cond[i]-uncond[i]))
	}
	// One LCMScheduler step at t=999 (the last, so no noise).
	step := func(out []float32) []float32 {
		sched, err := lcm.NewLCMScheduler(s.sched)
		if err != nil {
			t.Fatal(err)
		}
		if err := sched.SetTimesteps(1, 0, 1, nil); err != nil {
			t.Fatal(err)
		}
		_, denoised, err := sched.Step(out, res.InitLatents, 999, nil)
		if err != nil {
			t.Fatal(err)
		}
		return denoised
	}
	// The bound on the denoised difference: an error δ in cond and in uncond
	// is at most (1+2g)δ in uncond + g(cond - uncond); the step at t=999
	// turns an eps error e into c_out·σ/α·e (x0 = (z - σ·eps)/α, epsilon
	// prediction; ≈ 15 at t=999, where α ≈ 0.068). On top, float32 rounding
	// of the CFG combine and the step themselves: a few ulps of the largest
	// value they handle, 4·2⁻²⁴·max|·| each.
	ns, err := lcm.NewNoiseSchedule(s.sched)
	if err != nil {
		t.Fatal(err)
	}
	_, cOut := lcm.BoundaryScalings(999, float32(s.sched.TimestepScaling))
	gain := float64(cOut) * float64(ns.Sigma(999)) / float64(ns.Alpha(999))
	maxAbs := func(x []float32) float64 { return golden.MaxAbsDiff(x, make([]float32, len(x))) }
	ulps := 4 * math.Pow(2, -24) * (gain*maxAbs(guided) + maxAbs(res.Denoised[0]))
	tol := gain*(1+2*g)*delta + ulps
	d := golden.MaxAbsDiff(res.Denoised[0], step(guided))
	t.Logf("denoised vs hand-made CFG step: %g (bound %g from δ=%g, step gain %g)", d, tol, delta, gain)
	if d > tol {
		t.Errorf("denoised differs from the hand-made CFG step by %g, more than the bound %g", d, tol)
	}
	if d := golden.MaxAbsDiff(res.Denoised[0], step(cond)); d < 1e-4 {
		t.Errorf("guidance made no difference (%g)", d)
	}
	if res.Width != 64 || res.Height != 48 {
		t.Errorf("size %dx%d, want 64x48", res.Width, res.Height)
	}
}

// TestSaveGrid: the grid has one cell per image plus label bands.
func TestSaveGrid(t *testing.T) {
	cell := func(v uint8) *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, 16, 16))
		for i := range img.Pix {
			img.Pix[i] = v
		}
		return img
	}
	path := filepath.Join(t.TempDir(), "sub", "grid.png")
	rows := [][]*image.RGBA{{cell(10), cell(20)}, {cell(30), nil}}
	if err := SaveGrid(path, rows, []string{"a photo of a cat — 東京", "b"}, []int{2, 4}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	w := 2*(16+gridPad) + gridPad
	h := gridLineH + gridPad + 2*(gridLineH+gridPad+16+gridPad) + gridPad
	if img.Bounds().Dx() != w || img.Bounds().Dy() != h {
		t.Errorf("grid %v, want %dx%d", img.Bounds(), w, h)
	}
	if err := SaveGrid(path, [][]*image.RGBA{{nil}}, nil, nil); err == nil {
		t.Errorf("a grid without images: no error")
	}
}

// TestSamplerRefusesAnotherGrid: a distilled model's LCMScheduler config
// records its training grid; asking for another one is an error.
func TestSamplerRefusesAnotherGrid(t *testing.T) {
	b, opts := testBackend(t)
	g := golden.Load(t, "tiny-sd-golden")
	p, err := pipeline.Load(g.ModelDir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	s := newSampler(t, b, p, nil, nil, opts)
	_, err = s.Sample(SampleRequest{Prompts: []string{"a cat"}, Steps: 2, OriginalSteps: 25})
	if err == nil || !strings.Contains(err.Error(), "original_inference_steps 25") {
		t.Fatalf("err = %v, want an error about original_inference_steps", err)
	}
	t.Log(err)
}

// TestSamplerDDIMTeacher samples the fixture's plain SD teacher with DDIM
// and classifier-free guidance: SD's timesteps, and the final latents are
// one more DDIM step from the last prediction.
func TestSamplerDDIMTeacher(t *testing.T) {
	b, opts := testBackend(t)
	g := golden.Load(t, "tiny-sd-golden")
	p, err := pipeline.Load(g.TeacherDir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	s := newSampler(t, b, p, nil, nil, opts)
	res := sample(t, s, SampleRequest{Prompts: []string{"a cat", "a dog"}, Steps: 2, Guidance: 7.5, Scheduler: "ddim"})
	if !slices.Equal(res.Timesteps, []int64{501, 1}) {
		t.Errorf("timesteps %v, want [501 1] (steps_offset 1, leading)", res.Timesteps)
	}
	if len(res.Images) != 2 {
		t.Fatalf("%d images", len(res.Images))
	}
	if _, err := s.Sample(SampleRequest{Prompts: []string{"x"}, Scheduler: "euler"}); err == nil {
		t.Error("an unknown scheduler was accepted")
	}
}
