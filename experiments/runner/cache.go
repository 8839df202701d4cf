package runner

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/latentcache"
	"github.com/golcm/golcm/models/clip"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/pipeline"
)

// Training from a latent cache (data.cache): the batches come from a
// placement loader (datasets.NewPlacementsAt: the same samples, captions,
// flips, Positions and counts as the image loader, nothing decoded) and each
// sample's encoder outputs from the cache, so the run draws what a run from
// images draws, and resumes the same way.

// encoded is what the frozen encoders make of one batch.
type encoded struct {
	latents *tensors.Tensor        // [B, C, h, w], in the diffusion model's latent space
	cond    *clip.HostConditioning // the captions' embeddings
	timeIDs []float32              // SDXL's add_time_ids, B×6
}

// encode runs the frozen encoders on a batch (or reads the cache): the
// latents drawn with vaeNoise, the embeddings of captions (the batch's, or
// diffusion's with some dropped), and the time ids.
func (r *run) encode(batch *datasets.Batch, captions []string, vaeNoise *tensors.Tensor) (*encoded, error) {
	if r.cache != nil {
		return r.fromCache(batch, captions, vaeNoise)
	}
	B, H, W := len(batch.Samples), batch.Height, batch.Width
	pixels := tensors.FromFlatDataAndDimensions(batch.Pixels, B, 3, H, W)
	latents, err := r.vaeRunner.EncodeLatents(pixels, vaeNoise, r.spec.Data.VAEEncodeBatchSize)
	if err != nil {
		return nil, err
	}
	cond, err := r.tokenizeAndEncode(captions)
	if err != nil {
		return nil, err
	}
	return &encoded{latents: latents, cond: cond, timeIDs: batch.TimeIDs()}, nil
}

// openCache opens data.cache for this run's settings and the placement
// loader that walks the data along it.
func (r *run) openCache(cfg datasets.Config, pos datasets.Position) error {
	s := r.spec
	set, err := cacheSettings(r.pipe, cfg)
	if err != nil {
		return err
	}
	if r.cache, err = latentcache.Open(s.Data.Cache, set); err != nil {
		return fmt.Errorf("data.cache = %q: %w", s.Data.Cache, err)
	}
	if r.loader, err = datasets.NewPlacementsAt(cfg, pos, r.cache.Undecodable); err != nil {
		return err
	}
	fmt.Fprintf(r.log, "data: the cache %s (%d samples); the VAE and the text encoders are not loaded for training\n",
		s.Data.Cache, r.cache.Len())
	return nil
}

// cacheSettings are the settings a cache for the pipeline p and data cfg
// is made with (and checked against): the encoders' files' hashes and the
// data keys that decide each sample's crop, flip and captions.
func cacheSettings(p *pipeline.Pipeline, cfg datasets.Config) (latentcache.Settings, error) {
	set := latentcache.Settings{Resolution: cfg.Resolution, CenterCrop: cfg.CenterCrop, RandomFlip: cfg.RandomFlip,
		Interpolation: cfg.Interpolation, DropEmptyCaptions: cfg.DropEmptyCaptions, MinWidth: cfg.MinWidth,
		MinHeight: cfg.MinHeight, MaxWatermark: cfg.MaxWatermark}
	if set.Interpolation == "" {
		set.Interpolation = datasets.DefaultConfig().Interpolation
	}
	if len(cfg.Buckets) > 0 {
		sizes, err := cfg.TrainingSizes()
		if err != nil {
			return set, fmt.Errorf("data.buckets: %w", err)
		}
		for _, b := range sizes {
			set.Buckets = append(set.Buckets, b.String())
		}
	}
	var err error
	if set.Data, err = cfg.SourcesFingerprint(); err != nil {
		return set, fmt.Errorf("data.sources: %w", err)
	}
	vaeFiles, textFiles, err := p.EncoderFiles()
	if err != nil {
		return set, err
	}
	if set.VAE, err = latentcache.HashFiles(vaeFiles...); err != nil {
		return set, err
	}
	for _, files := range textFiles {
		h, err := latentcache.HashFiles(files...)
		if err != nil {
			return set, err
		}
		set.TextEncoders = append(set.TextEncoders, h)
	}
	return set, nil
}

// fromCache is encode from the cache: latent = (mean + exp(logvar/2)·ε −
// shift)·scaling_factor per element, as vae.Posterior.Sample and
// Config.Latents compute it in the graph, on the posterior of the sample's
// flip; the embeddings of the caption each sample drew (or of "" for a
// dropped caption); the time ids the cache made, checked against the
// sample's placement.
func (r *run) fromCache(batch *datasets.Batch, captions []string, vaeNoise *tensors.Tensor) (*encoded, error) {
	B := len(batch.Samples)
	cfg := r.pipe.VAE.Config
	noise, dims, err := nn.TensorFloat32(vaeNoise)
	if err != nil {
		return nil, err
	}
	per := len(noise) / B
	latents := make([]float32, 0, len(noise))
	var context, pooled []float32
	var ids []float32
	sdxl := r.pipe.Kind() == pipeline.SDXL
	placed := batch.TimeIDs()
	shift, scale := float32(cfg.Shift()), float32(cfg.ScalingFactor)
	for i, smp := range batch.Samples {
		key := smp.CacheKey()
		e, err := r.cache.Get(key)
		if err != nil {
			return nil, fmt.Errorf("data.cache: %w (rebuild the cache if the data changed)", err)
		}
		meanName, logvarName, idsName := latentcache.NameMean, latentcache.NameLogVar, latentcache.NameTimeIDs
		if smp.Flipped {
			meanName, logvarName, idsName = latentcache.NameFlippedMean, latentcache.NameFlippedLogVar, latentcache.NameFlippedTimeIDs
		}
		mean, logvar, err := cachedPair(e, meanName, logvarName, dims[1:])
		if err != nil {
			return nil, err
		}
		eps := noise[i*per : (i+1)*per]
		for j := range mean {
			std := float32(math.Exp(float64(logvar[j] * 0.5)))
			latents = append(latents, (mean[j]+std*eps[j]-shift)*scale)
		}
		text, idx := e, slices.Index(e.Captions, captions[i])
		if idx < 0 {
			if captions[i] != "" {
				return nil, fmt.Errorf("data.cache: sample %s drew caption %q, which the cache does not hold (its captions: %q); rebuild the cache", key, captions[i], e.Captions)
			}
			if text, err = r.emptyPrompt(); err != nil {
				return nil, err
			}
			idx = 0
		}
		ctx, err := cachedArray(text, latentcache.CaptionArray(latentcache.NamePromptEmbeds, idx))
		if err != nil {
			return nil, err
		}
		context = append(context, ctx.Data...)
		if sdxl {
			p, err := cachedArray(text, latentcache.CaptionArray(latentcache.NamePooled, idx))
			if err != nil {
				return nil, err
			}
			pooled = append(pooled, p.Data...)
			t, err := cachedArray(e, idsName)
			if err != nil {
				return nil, err
			}
			if !slices.Equal(t.Data, placed[6*i:6*i+6]) {
				return nil, fmt.Errorf("data.cache: sample %s has time ids %v in the cache, %v in the data: the data changed; rebuild the cache", key, t.Data, placed[6*i:6*i+6])
			}
			ids = append(ids, t.Data...)
		}
	}
	L, D := r.pipe.Tokenizers[0].MaxLength, len(context)/(B*r.pipe.Tokenizers[0].MaxLength)
	out := &encoded{latents: tensors.FromFlatDataAndDimensions(latents, dims...),
		cond: &clip.HostConditioning{Context: tensors.FromFlatDataAndDimensions(context, B, L, D)}, timeIDs: ids}
	if sdxl {
		out.cond.TextEmbeds = tensors.FromFlatDataAndDimensions(pooled, B, len(pooled)/B)
	}
	return out, nil
}

// emptyPrompt is the cache's encoding of "" (read once).
func (r *run) emptyPrompt() (latentcache.Entry, error) {
	if r.cachedEmpty == nil {
		e, err := r.cache.Get(latentcache.EmptyPromptKey)
		if err != nil {
			return e, fmt.Errorf("data.cache: %w", err)
		}
		r.cachedEmpty = &e
	}
	return *r.cachedEmpty, nil
}

// emptyPromptEmbeds is the encoding of B empty prompts (SD's unconditional
// embeddings) from the cache.
func (r *run) emptyPromptEmbeds(B int) (*clip.HostConditioning, error) {
	e, err := r.emptyPrompt()
	if err != nil {
		return nil, err
	}
	a, err := cachedArray(e, latentcache.CaptionArray(latentcache.NamePromptEmbeds, 0))
	if err != nil {
		return nil, err
	}
	var data []float32
	for range B {
		data = append(data, a.Data...)
	}
	h := &clip.HostConditioning{Context: tensors.FromFlatDataAndDimensions(data, append([]int{B}, a.Shape...)...)}
	if p, ok := e.Arrays[latentcache.CaptionArray(latentcache.NamePooled, 0)]; ok {
		var pooled []float32
		for range B {
			pooled = append(pooled, p.Data...)
		}
		h.TextEmbeds = tensors.FromFlatDataAndDimensions(pooled, B, len(p.Data))
	}
	return h, nil
}

// cachedArray is array name of a cache entry.
func cachedArray(e latentcache.Entry, name string) (latentcache.Array, error) {
	a, ok := e.Arrays[name]
	if !ok {
		return a, fmt.Errorf("data.cache: sample %s has no %s array (made for another pipeline or without random_flip?)", e.Key, name)
	}
	return a, nil
}

// cachedPair is a posterior's mean and log-variance, which must have the
// batch's latent shape (the sample's bucket).
func cachedPair(e latentcache.Entry, mean, logvar string, shape []int) ([]float32, []float32, error) {
	m, err := cachedArray(e, mean)
	if err != nil {
		return nil, nil, err
	}
	v, err := cachedArray(e, logvar)
	if err != nil {
		return nil, nil, err
	}
	if !slices.Equal(m.Shape, shape) || !slices.Equal(v.Shape, shape) {
		return nil, nil, fmt.Errorf("data.cache: sample %s has latents of shape %v, the batch wants %v", e.Key, m.Shape, shape)
	}
	return m.Data, v.Data, nil
}

// loadEncoders reads the VAE's and text encoders' weights when the run
// trains from a cache and something (validation) needs them.
func (r *run) loadEncoders() error {
	if r.pipe.EncodersLoaded() {
		return nil
	}
	fmt.Fprintln(r.log, "validation: loading the VAE and the text encoders (training reads the cache)")
	if err := r.pipe.LoadEncoders(); err != nil {
		return err
	}
	return r.convertFrozen(r.encoderWeights())
}
