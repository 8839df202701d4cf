package main

import (
	"flag"
	"fmt"
	"image"
	_ "image/jpeg" // -image accepts JPEG
	_ "image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
	"github.com/golcm/golcm/sampling"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " | ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runSample(args []string) error {
	fs := flag.NewFlagSet("sample", flag.ContinueOnError)
	model := fs.String("model", "", "diffusers pipeline folder or Hugging Face model id in the local cache (required)")
	revision := fs.String("revision", "", "hub revision of -model (default main)")
	variant := fs.String("variant", "", `weight variant to load, e.g. "fp16" (default: full precision)`)
	vaeOverride := fs.String("vae", "", "AutoencoderKL folder or model id to use instead of the pipeline's vae/ (e.g. the SD-XL fp16-fix VAE)")
	loraFile := fs.String("lora", "", "LoRA safetensors file (LCM-LoRA, diffusers/PEFT/kohya layouts) applied to the UNet")
	var prompts stringList
	fs.Var(&prompts, "prompt", "text prompt; repeat the flag for several images (required)")
	negative := fs.String("negative", "", "negative prompt, used only with classifier-free guidance (a UNet without guidance embedding and -guidance > 1)")
	steps := fs.Int("steps", sampling.DefaultSampleSteps, "inference steps")
	origSteps := fs.Int("original-steps", 0, "LCMScheduler original_inference_steps, the distillation grid size (0: the scheduler config's, 50 unless it says otherwise)")
	scheduler := fs.String("scheduler", "lcm", "lcm (few-step consistency sampling) or ddim (a teacher's 25-50 step DDIM, with CFG)")
	guidance := fs.Float64("guidance", 8.5, "guidance_scale: a full LCM embeds w = guidance-1; other UNets run CFG when > 1 (LCM-LoRA: 1 to 2)")
	seed := fs.Uint64("seed", 0, "seed of golcm's Go noise generator (it does not reproduce torch's: the same seed gives different images than diffusers)")
	width := fs.Int("width", 0, "image width in pixels (0: the model's default, or the -image width)")
	height := fs.Int("height", 0, "image height in pixels (0: the model's default, or the -image height)")
	initImage := fs.String("image", "", "PNG or JPEG to start from (image to image)")
	strength := fs.Float64("strength", 0.8, "image to image: how much of the schedule to run, 0 < strength <= 1 (1 all but ignores the image)")
	out := fs.String("out", "out.png", "output PNG; with several prompts a grid, plus one numbered file per prompt (out-0.png, ...)")
	backendName := fs.String("backend", "", "backend to use (default: $GOMLX_BACKEND, else XLA when a PJRT plugin is installed, else go)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: go run ./experiments sample -model DIR -prompt TEXT [-prompt TEXT ...] [flags]

Samples images in a few steps with an LCMScheduler, as diffusers' LatentConsistencyModelPipeline
(full LCM) or StableDiffusion(XL)Pipeline (LCM-LoRA, plain UNet) does.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("sample: unexpected arguments %q (quote the prompt: -prompt \"a cat\")", fs.Args())
	case *model == "":
		return fmt.Errorf("sample: -model is required (a diffusers pipeline folder or model id)")
	case len(prompts) == 0:
		return fmt.Errorf("sample: -prompt is required")
	case *steps < 1:
		return fmt.Errorf("sample: -steps %d, want at least 1", *steps)
	case *origSteps < 0:
		return fmt.Errorf("sample: -original-steps %d, want 0 (config) or more", *origSteps)
	case *width < 0 || *height < 0:
		return fmt.Errorf("sample: -width %d -height %d must not be negative", *width, *height)
	case *width%8 != 0 || *height%8 != 0:
		return fmt.Errorf("sample: -width %d -height %d: both must be multiples of 8 (the VAE's factor)", *width, *height)
	case !(*guidance >= 0) || math.IsInf(*guidance, 0):
		return fmt.Errorf("sample: -guidance %v, want a finite number >= 0 (1 or less turns classifier-free guidance off)", *guidance)
	case *initImage != "" && !(*strength > 0 && *strength <= 1):
		return fmt.Errorf("sample: -strength %v, want 0 < strength <= 1", *strength)
	case !strings.EqualFold(filepath.Ext(*out), ".png"):
		return fmt.Errorf("sample: -out %q must end in .png", *out)
	}

	req := sampling.SampleRequest{
		Prompts: prompts, NegativePrompt: *negative, Steps: *steps, OriginalSteps: *origSteps,
		Guidance: *guidance, Seed: *seed, Width: *width, Height: *height, Scheduler: *scheduler,
	}
	if *initImage != "" {
		var err error
		if req.InitImage, err = readImage(*initImage); err != nil {
			return err
		}
		req.Strength = *strength
	}

	b, choice, err := backend.Default(*backendName)
	if err != nil {
		return err
	}
	fmt.Println(backend.Describe(b, choice))
	opts := nn.ForBackend(choice.Name())

	start := time.Now()
	p, err := pipeline.LoadOn(b, *model, *revision, *variant, *vaeOverride)
	if err != nil {
		return err
	}
	fmt.Println(p.Describe())
	if err := checkSampleSize(p, *width, *height); err != nil {
		return err
	}
	var adapters *lora.Adapters
	if *loraFile != "" {
		if adapters, err = lora.Read(*loraFile, p.UNet.Config.ParamShapes()); err != nil {
			return err
		}
		fmt.Printf("lora: %s (%d adapted layers, rank %d)\n", *loraFile, len(adapters.Modules), adapters.Config.Rank)
	}
	fmt.Printf("loaded in %.1fs\n", time.Since(start).Seconds())

	sampler, err := sampling.NewSampler(b, p, nil, adapters, opts)
	if err != nil {
		return err
	}
	defer sampler.Finalize()
	start = time.Now()
	res, err := sampler.Sample(req)
	if err != nil {
		return err
	}
	fmt.Printf("sampled %d image(s) of %dx%d, timesteps %v, in %.1fs\n",
		len(res.Images), res.Width, res.Height, res.Timesteps, time.Since(start).Seconds())

	if dir := filepath.Dir(*out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("sample: %w", err)
		}
	}
	if len(res.Images) == 1 {
		if err := sampling.SavePNG(*out, res.Images[0]); err != nil {
			return err
		}
		fmt.Println("wrote", *out)
		return nil
	}
	rows := make([][]*image.RGBA, len(res.Images))
	stem := strings.TrimSuffix(*out, filepath.Ext(*out))
	for i, img := range res.Images {
		rows[i] = []*image.RGBA{img}
		path := fmt.Sprintf("%s-%d.png", stem, i)
		if err := sampling.SavePNG(path, img); err != nil {
			return err
		}
		fmt.Println("wrote", path)
	}
	if err := sampling.SaveGrid(*out, rows, prompts, []int{*steps}); err != nil {
		return err
	}
	fmt.Println("wrote", *out, "(grid)")
	return nil
}

// maxSizeFactor bounds sample sizes by the model's native size: at most this
// many times its native area and its native side. Past that the activations
// grow beyond any GPU (attention is quadratic in the latent area) and the
// model makes no sensible images anyway.
const maxSizeFactor = 4

// checkSampleSize refuses image sizes the model cannot sample before
// anything is allocated: sides not multiples of the pipeline's size
// multiple, or larger than maxSizeFactor times the native size. 0 means
// the model's (or the init image's) size and is checked by the sampler.
func checkSampleSize(p *pipeline.Pipeline, width, height int) error {
	nh, nw, err := p.DefaultSize()
	if err != nil {
		return err
	}
	if m := p.SizeMultiple(); width%m != 0 || height%m != 0 {
		return fmt.Errorf("sample: -width %d -height %d: this model needs multiples of %d (VAE factor %d × UNet downsampling %d), e.g. %d×%d",
			width, height, m, p.VAEScaleFactor(), p.UNet.Config.DownsampleFactor(), nw, nh)
	}
	w, h := width, height
	if w == 0 {
		w = nw
	}
	if h == 0 {
		h = nh
	}
	maxSide := maxSizeFactor * max(nw, nh)
	if w > maxSide || h > maxSide || w*h > maxSizeFactor*nw*nh {
		return fmt.Errorf("sample: %d×%d is too large for this model (native %d×%d): at most %d× its area (e.g. %d×%d) and %d pixels a side",
			w, h, nw, nh, maxSizeFactor, 2*nw, 2*nh, maxSide)
	}
	return nil
}

func readImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sample: -image: %w", err)
	}
	defer f.Close()
	img, format, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("sample: -image %s: not a PNG or JPEG image: %w", path, err)
	}
	fmt.Printf("init image: %s (%s, %dx%d)\n", path, format, img.Bounds().Dx(), img.Bounds().Dy())
	return img, nil
}
