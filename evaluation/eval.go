package evaluation

import (
	"context"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/golcm/golcm/metrics"
	"github.com/golcm/golcm/models/classifier"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/sampling"
)

// Candidate is one model to evaluate: a sampler over its UNet, the
// scheduler and guidance it samples with, and its step counts.
type Candidate struct {
	Model     string // the row label: "teacher", "lcm", "lcm-lora", …
	Sampler   *sampling.Sampler
	Scheduler string // "ddim" or "lcm" (sampling.SampleRequest.Scheduler)
	Guidance  float64
	Steps     []int
	// OriginalSteps is the LCM scheduler's original_inference_steps, the
	// distillation's DDIM grid (0: the pipeline's scheduler config's).
	OriginalSteps int
}

// Plan is one evaluation with its models built.
type Plan struct {
	// Reference samples the sample every row is compared with (its first
	// step count); Candidates give the other rows, in order.
	Reference  Candidate
	Candidates []Candidate
	Prompts    []string
	// SamplesPerPrompt images per prompt: sample k has prompt k mod
	// len(Prompts) and the initial noise drawn from (Seed, k), in every row.
	SamplesPerPrompt int
	Seed             uint64
	BatchSize        int
	Width, Height    int
	// LatentShape is [channels, height, width] of one initial noise.
	LatentShape [3]int
	// Classifier and its runner, optional, give each row the prompt
	// accuracy and, with Real, the Fréchet distance.
	Classifier *classifier.Runner
	Labels     []string
	Real       *classifier.Dataset
	// OutputDir gets samples/<row>.safetensors and grid.png ("": none).
	OutputDir string
	Settings  any    // recorded in the report
	Machine   string // the backend, for the report's timing label
}

// Options are where an evaluation reports.
type Options struct {
	Log      io.Writer // one line per row; nil: quiet
	Progress io.Writer // a progress bar over the sample batches; nil: none
}

// Row is one (model, sampler, steps) of the report.
type Row struct {
	Model     string  `json:"model"`
	Sampler   string  `json:"sampler"`
	Steps     int     `json:"steps"`
	Guidance  float64 `json:"guidance"`
	Reference bool    `json:"reference,omitempty"`
	// LatentRMSE is the mean over samples of the RMSE between the final
	// latents (what the VAE decodes, scaled) and the reference sample's.
	LatentRMSE float64 `json:"latent_rmse"`
	// PixelPSNR is the mean over samples of the PSNR (dB, pixels in [0, 1])
	// to the reference sample; null when infinite (the reference itself).
	PixelPSNR *float64 `json:"pixel_psnr_db"`
	// Frechet is the Fréchet distance between the classifier features of
	// this row's samples and of the real set.
	Frechet *float64 `json:"frechet_distance,omitempty"`
	// PromptAccuracy is the fraction of samples the classifier puts in the
	// class their prompt names (over the prompts that name one).
	PromptAccuracy *float64 `json:"prompt_accuracy,omitempty"`
	// SecondsPerImage is the wall clock of sampling (text encoding, UNet
	// steps, VAE decoding) per image, on this machine, after a warm-up
	// (the padding of a last, partial batch counts too).
	SecondsPerImage float64 `json:"seconds_per_image_this_machine"`
	// Samples is the file of this row's latents [N, C, h, w] and pixels
	// [N, 3, H, W] in [0, 1], relative to the output folder.
	Samples string `json:"samples,omitempty"`
}

// Name is the row's label: "lcm lcm 4 steps".
func (r Row) Name() string {
	name := fmt.Sprintf("%s %s %d steps", r.Model, r.Sampler, r.Steps)
	if r.Reference {
		name += " (reference)"
	}
	return name
}

// Report is an evaluation's result, eval.json.
type Report struct {
	Settings  any      `json:"settings"`
	Machine   string   `json:"machine"`
	Prompts   []string `json:"prompts"`
	Images    int      `json:"images_per_row"`
	Real      *Real    `json:"real,omitempty"`
	Rows      []Row    `json:"rows"`
	Generated string   `json:"generated"`
}

// Real describes the real set the Fréchet distances are measured to.
type Real struct {
	Images int `json:"images"`
	// Accuracy is the classifier's accuracy on the real images.
	Accuracy float64 `json:"classifier_accuracy"`
	// HalvesFrechet is the distance between the set's two halves: the
	// floor a generator matching the real distribution would reach with
	// sets of half this size (absent with fewer than 4 images).
	HalvesFrechet *float64 `json:"halves_frechet_distance,omitempty"`
	// RowFloorFrechet is the distance from RowFloorImages real images
	// (every k-th, k = Images / images per row) to the whole set: what a
	// generator matching the real distribution would score with a row's
	// number of images. The Fréchet distance of a small set is biased
	// upward (its covariance is estimated from few samples), so this, not
	// HalvesFrechet, is the floor the rows are measured against (absent
	// when the rows are not smaller than the real set).
	RowFloorFrechet *float64 `json:"row_floor_frechet_distance,omitempty"`
	RowFloorImages  int      `json:"row_floor_images,omitempty"`
}

// rowSamples is what one row sampled.
type rowSamples struct {
	latents []float32 // [N, C, h, w]
	pixels  []float32 // [N, 3, H, W] in [0, 1]
	images  []*image.RGBA
	seconds float64
}

// Evaluate samples every row of the plan and measures it.
func Evaluate(ctx context.Context, p Plan, o Options) (*Report, error) {
	if len(p.Prompts) == 0 || p.SamplesPerPrompt < 1 || p.BatchSize < 1 || len(p.Reference.Steps) == 0 {
		return nil, fmt.Errorf("eval: a plan needs prompts, samples per prompt, a batch size and the reference's steps")
	}
	n := len(p.Prompts) * p.SamplesPerPrompt
	rep := &Report{Settings: p.Settings, Machine: p.Machine, Prompts: p.Prompts, Images: n,
		Generated: time.Now().UTC().Format(time.RFC3339)}
	jobs := p.jobs()
	batches := (n + p.BatchSize - 1) / p.BatchSize
	var bar *progressbar.ProgressBar
	if o.Progress != nil {
		bar = progressbar.NewOptions(len(jobs)*batches, progressbar.OptionSetWriter(o.Progress),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetDescription("eval"))
		defer fmt.Fprintln(o.Progress)
	}

	var realGauss *metrics.Gaussian
	if p.Classifier != nil && p.Real != nil {
		real, g, err := measureReal(p, n)
		if err != nil {
			return nil, err
		}
		rep.Real, realGauss = real, g
	}
	classes := make([]int, n)
	named := 0
	for k := range classes {
		classes[k] = PromptClass(p.Prompts[k%len(p.Prompts)], p.Labels)
		if classes[k] >= 0 {
			named++
		}
	}

	warmed := map[*sampling.Sampler]map[string]bool{}
	var ref *rowSamples
	var grid [][]*image.RGBA
	var gridLabels []string
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s/%v", j.c.Scheduler, j.c.Guidance)
		if warmed[j.c.Sampler] == nil {
			warmed[j.c.Sampler] = map[string]bool{}
		}
		if !warmed[j.c.Sampler][key] {
			// Compile before the clock starts: one 1-step batch of the
			// same shapes.
			if _, err := sampleBatch(p, j.c, 1, 0); err != nil {
				return nil, err
			}
			warmed[j.c.Sampler][key] = true
		}
		s, err := sampleRow(ctx, p, j.c, j.steps, bar)
		if err != nil {
			return nil, err
		}
		if j.reference {
			ref = s
		}
		row := Row{Model: j.c.Model, Sampler: j.c.Scheduler, Steps: j.steps, Guidance: j.c.Guidance,
			Reference: j.reference, SecondsPerImage: s.seconds / float64(n)}
		if err := compare(&row, s, ref, n); err != nil {
			return nil, err
		}
		if p.Classifier != nil {
			if err := classify(&row, p, s, realGauss, classes, named); err != nil {
				return nil, err
			}
		}
		if p.OutputDir != "" {
			if row.Samples, err = saveSamples(p, row, s, n); err != nil {
				return nil, err
			}
		}
		rep.Rows = append(rep.Rows, row)
		grid = append(grid, s.images[:len(p.Prompts)])
		gridLabels = append(gridLabels, row.Name())
		if o.Log != nil {
			fmt.Fprintln(o.Log, rowLine(row))
		}
	}
	if p.OutputDir != "" {
		cols := make([]string, len(p.Prompts))
		for i, prompt := range p.Prompts {
			cols[i] = prompt
			if c := PromptClass(prompt, p.Labels); c >= 0 {
				cols[i] = p.Labels[c]
			}
		}
		if err := sampling.SaveLabelledGrid(filepath.Join(p.OutputDir, GridFile), upscaleRows(grid), gridLabels, cols); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// job is one row to sample.
type job struct {
	c         Candidate
	steps     int
	reference bool
}

// jobs lists the rows: the reference first, then every candidate's step
// counts in order, less the one that is the reference again.
func (p Plan) jobs() []job {
	ref := p.Reference
	jobs := []job{{ref, ref.Steps[0], true}}
	for _, c := range p.Candidates {
		for _, s := range c.Steps {
			if c.Sampler == ref.Sampler && c.Scheduler == ref.Scheduler && c.Guidance == ref.Guidance && s == ref.Steps[0] {
				continue
			}
			jobs = append(jobs, job{c, s, false})
		}
	}
	return jobs
}

// The files an evaluation writes in its output folder.
const (
	ReportFile = "eval.json"
	GridFile   = "grid.png"
	SamplesDir = "samples"
)

// initNoise is sample k's initial noise: the same in every row.
func initNoise(p Plan, k int) []float32 {
	rng := rand.New(rand.NewPCG(p.Seed, uint64(k)))
	out := make([]float32, p.LatentShape[0]*p.LatentShape[1]*p.LatentShape[2])
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// sampleBatch samples batch number b (samples b·BatchSize …, wrapping
// around to fill the last batch, so every call has the same shapes) and
// returns the result for all BatchSize rows.
func sampleBatch(p Plan, c Candidate, steps, b int) (*sampling.SampleResult, error) {
	n := len(p.Prompts) * p.SamplesPerPrompt
	size := min(p.BatchSize, n)
	prompts := make([]string, size)
	var noise []float32
	for i := range size {
		k := (b*size + i) % n
		prompts[i] = p.Prompts[k%len(p.Prompts)]
		noise = append(noise, initNoise(p, k)...)
	}
	res, err := c.Sampler.Sample(sampling.SampleRequest{
		Prompts: prompts, Steps: steps, Guidance: c.Guidance, Seed: p.Seed + uint64(b),
		Width: p.Width, Height: p.Height, InitNoise: noise, Scheduler: c.Scheduler, OriginalSteps: c.OriginalSteps,
	})
	if err != nil {
		return nil, fmt.Errorf("eval: %s %s %d steps: %w", c.Model, c.Scheduler, steps, err)
	}
	return res, nil
}

// sampleRow samples all n images of one row.
func sampleRow(ctx context.Context, p Plan, c Candidate, steps int, bar *progressbar.ProgressBar) (*rowSamples, error) {
	n := len(p.Prompts) * p.SamplesPerPrompt
	size := min(p.BatchSize, n)
	s := &rowSamples{}
	for b := 0; b*size < n; b++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		res, err := sampleBatch(p, c, steps, b)
		if err != nil {
			return nil, err
		}
		s.seconds += time.Since(start).Seconds()
		keep := min(size, n-b*size)
		// The pipelines decode LCM's last denoised sample and DDIM's last
		// latents (see sampling.Sampler.Sample).
		final := res.Denoised[len(res.Denoised)-1]
		if c.Scheduler == "ddim" {
			final = res.Latents[len(res.Latents)-1]
		}
		per := len(final) / size
		s.latents = append(s.latents, final[:keep*per]...)
		pix := len(res.Pixels) / size
		s.pixels = append(s.pixels, sampling.DenormalizeImage(res.Pixels[:keep*pix])...)
		s.images = append(s.images, res.Images[:keep]...)
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	return s, nil
}

// compare fills the distances of a row's samples to the reference's.
func compare(row *Row, s, ref *rowSamples, n int) error {
	lat, pix := len(s.latents)/n, len(s.pixels)/n
	if len(ref.latents) != len(s.latents) || len(ref.pixels) != len(s.pixels) {
		return fmt.Errorf("eval: %s: %d latent and %d pixel values, the reference has %d and %d (sizes must match)",
			row.Name(), len(s.latents), len(s.pixels), len(ref.latents), len(ref.pixels))
	}
	var rmse, psnr float64
	for k := range n {
		r, err := metrics.RMSE(ref.latents[k*lat:(k+1)*lat], s.latents[k*lat:(k+1)*lat])
		if err != nil {
			return err
		}
		q, err := metrics.PSNR(ref.pixels[k*pix:(k+1)*pix], s.pixels[k*pix:(k+1)*pix], 1)
		if err != nil {
			return err
		}
		rmse += r / float64(n)
		psnr += q / float64(n)
	}
	row.LatentRMSE = rmse
	if !math.IsInf(psnr, 1) {
		row.PixelPSNR = &psnr
	}
	return nil
}

// classify fills the classifier's measures of a row.
func classify(row *Row, p Plan, s *rowSamples, real *metrics.Gaussian, classes []int, named int) error {
	cfg := p.Classifier.Config()
	x, err := classifierInput(cfg, s.images)
	if err != nil {
		return err
	}
	out, err := p.Classifier.Predict(x)
	if err != nil {
		return err
	}
	if real != nil && len(s.images) >= 2 {
		g, err := metrics.FitGaussian(out.Features, cfg.FeatureDim)
		if err != nil {
			return err
		}
		fd, err := g.Frechet(*real)
		if err != nil {
			return err
		}
		row.Frechet = &fd
	}
	if named > 0 {
		k := cfg.NumClasses()
		var logits []float32
		var want []int
		for i, c := range classes {
			if c >= 0 {
				logits = append(logits, out.Logits[i*k:(i+1)*k]...)
				want = append(want, c)
			}
		}
		acc, err := metrics.PromptAccuracy(logits, k, want)
		if err != nil {
			return err
		}
		row.PromptAccuracy = &acc
	}
	return nil
}

// classifierInput turns images into the classifier's input [n, InChannels,
// ImageSize, ImageSize]: each image as the VAE takes it (sampling.ImagePixels:
// resized when its size differs, in [-1, 1]), averaged to gray for a
// one-channel classifier (golcm's grayscale data is gray replicated to RGB).
func classifierInput(c *classifier.Config, images []*image.RGBA) ([]float32, error) {
	if c.InChannels != 1 && c.InChannels != 3 {
		return nil, fmt.Errorf("classifier: images feed 1 or 3 input channels, the classifier has %d", c.InChannels)
	}
	plane := c.ImageSize * c.ImageSize
	out := make([]float32, 0, len(images)*c.InChannels*plane)
	for _, img := range images {
		rgb := sampling.ImagePixels(img, c.ImageSize, c.ImageSize)
		if c.InChannels == 3 {
			out = append(out, rgb...)
			continue
		}
		for i := range plane {
			out = append(out, (rgb[i]+rgb[plane+i]+rgb[2*plane+i])/3)
		}
	}
	return out, nil
}

// measureReal runs the classifier on the real set: its accuracy, the
// Gaussian of its features, the distance between its halves, and the floor
// for rows of n images.
func measureReal(p Plan, n int) (*Real, *metrics.Gaussian, error) {
	cfg := p.Classifier.Config()
	if p.Real.Channels != cfg.InChannels || p.Real.Size != cfg.ImageSize {
		return nil, nil, fmt.Errorf("eval: real images are %d×%d×%d, the classifier takes %d×%d×%d",
			p.Real.Channels, p.Real.Size, p.Real.Size, cfg.InChannels, cfg.ImageSize, cfg.ImageSize)
	}
	out, err := p.Classifier.Predict(p.Real.Images)
	if err != nil {
		return nil, nil, err
	}
	real := &Real{Images: p.Real.Len()}
	if real.Accuracy, err = metrics.PromptAccuracy(out.Logits, cfg.NumClasses(), p.Real.Labels); err != nil {
		return nil, nil, err
	}
	g, err := metrics.FitGaussian(out.Features, cfg.FeatureDim)
	if err != nil {
		return nil, nil, fmt.Errorf("eval: real set: %w", err)
	}
	half := p.Real.Len() / 2 * cfg.FeatureDim
	if half >= 2*cfg.FeatureDim {
		fd, err := metrics.FrechetDistance(out.Features[:half], out.Features[half:2*half], cfg.FeatureDim)
		if err != nil {
			return nil, nil, err
		}
		real.HalvesFrechet = &fd
	}
	if total := p.Real.Len(); n >= 2 && n < total {
		d, stride := cfg.FeatureDim, total/n
		subset := make([]float32, 0, n*d)
		for k := range n {
			subset = append(subset, out.Features[k*stride*d:(k*stride+1)*d]...)
		}
		sg, err := metrics.FitGaussian(subset, d)
		if err != nil {
			return nil, nil, fmt.Errorf("eval: real set, %d-image floor: %w", n, err)
		}
		fd, err := sg.Frechet(g)
		if err != nil {
			return nil, nil, err
		}
		real.RowFloorFrechet, real.RowFloorImages = &fd, n
	}
	return real, &g, nil
}

// saveSamples writes a row's latents and pixels as safetensors.
func saveSamples(p Plan, row Row, s *rowSamples, n int) (string, error) {
	name := filepath.Join(SamplesDir, fmt.Sprintf("%s-%s-%d.safetensors", row.Model, row.Sampler, row.Steps))
	if err := os.MkdirAll(filepath.Join(p.OutputDir, SamplesDir), 0o755); err != nil {
		return "", fmt.Errorf("eval: %w", err)
	}
	w := nn.NewWeights()
	c := p.LatentShape
	w.SetFloat32("latents", s.latents, n, c[0], c[1], c[2])
	w.SetFloat32("pixels", s.pixels, n, 3, len(s.pixels)/(3*n*p.Width), p.Width)
	if err := nn.WriteWeights(filepath.Join(p.OutputDir, name), w, "F32"); err != nil {
		return "", fmt.Errorf("eval: %w", err)
	}
	return name, nil
}

// minGridCell is the side grid cells are scaled up to (nearest
// neighbour), so that small samples stay visible beside their labels.
const minGridCell = 96

func upscaleRows(rows [][]*image.RGBA) [][]*image.RGBA {
	out := make([][]*image.RGBA, len(rows))
	for i, row := range rows {
		out[i] = make([]*image.RGBA, len(row))
		for j, img := range row {
			out[i][j] = upscale(img, (minGridCell+img.Bounds().Dx()-1)/img.Bounds().Dx())
		}
	}
	return out
}

func upscale(img *image.RGBA, f int) *image.RGBA {
	if f <= 1 {
		return img
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx()*f, b.Dy()*f))
	for y := range b.Dy() * f {
		for x := range b.Dx() * f {
			src := img.PixOffset(b.Min.X+x/f, b.Min.Y+y/f)
			copy(out.Pix[out.PixOffset(x, y):out.PixOffset(x, y)+4], img.Pix[src:src+4])
		}
	}
	return out
}
