package lcm

import (
	"fmt"
	"math"
)

// GuidanceEmbedding embeds guidance scales w (one per sample) as the
// B×dim row-major matrix the student's time_embedding.cond_proj takes (the
// scripts' guidance_scale_embedding, the pipelines'
// get_guidance_scale_embedding; REFERENCE-LCD §2.6):
//
//	w' = 1000·w,  half = dim/2,  f_i = exp(-i·ln(10000)/(half-1)),
//	e = w'·f,  row = [sin(e), cos(e)]  (zero padded when dim is odd)
//
// Training embeds the sampled w itself; pipelines embed guidance_scale - 1.
// Note half-1, unlike TimestepEmbedding's half - freq_shift. dim must be at
// least 4.
func GuidanceEmbedding(w []float32, dim int) []float32 {
	half := dim / 2
	if half < 2 {
		panic(fmt.Sprintf("lcm: GuidanceEmbedding dim %d, want at least 4", dim))
	}
	// emb = torch.log(torch.tensor(10000.0)) / (half_dim - 1), all float32;
	// then exp(arange(half) * -emb).
	step := float32(math.Log(10000)) / float32(half-1)
	freqs := make([]float32, half)
	for i := range freqs {
		freqs[i] = expf(float32(i) * -step)
	}
	scaled := make([]float32, len(w))
	for b, v := range w {
		scaled[b] = v * 1000
	}
	return sinusoids(scaled, freqs, dim, false)
}

// TimestepEmbedding is the UNet's sinusoidal timestep embedding (diffusers'
// get_timestep_embedding inside the `Timesteps` module), B×dim row-major:
//
//	f_i = exp(-ln(10000)·i / (half - freqShift)),  e = t·f,
//	row = [sin(e), cos(e)], or [cos(e), sin(e)] when flipSinToCos
//
// zero padded when dim is odd. Stable Diffusion UNets use flipSinToCos =
// true, freqShift = 0 and dim = block_out_channels[0]; SDXL's time_ids use
// dim = addition_time_embed_dim.
func TimestepEmbedding(t []float32, dim int, flipSinToCos bool, freqShift float32) []float32 {
	half := dim / 2
	// exponent = -math.log(10000) * arange(half, float32), then divided by
	// (half - freq_shift): a float32 product and a float32 quotient.
	negLog := float32(-math.Log(10000))
	div := float32(half) - freqShift
	freqs := make([]float32, half)
	for i := range freqs {
		freqs[i] = expf(negLog * float32(i) / div)
	}
	return sinusoids(t, freqs, dim, flipSinToCos)
}

// sinusoids builds rows [sin(x·f), cos(x·f)] (or cos first) for each x,
// with x·f rounded to float32 as torch multiplies, and zero padding up to
// dim. torch's float32 sin and cos are within 1 ulp of the correctly
// rounded value computed here.
func sinusoids(xs, freqs []float32, dim int, cosFirst bool) []float32 {
	half := len(freqs)
	out := make([]float32, len(xs)*dim)
	for b, x := range xs {
		row := out[b*dim : (b+1)*dim]
		for i, f := range freqs {
			arg := float64(x * f)
			sin, cos := float32(math.Sin(arg)), float32(math.Cos(arg))
			if cosFirst {
				sin, cos = cos, sin
			}
			row[i], row[half+i] = sin, cos
		}
	}
	return out
}

// GuidanceScale maps a uniform draw u in [0, 1) to a guidance scale in
// [wMin, wMax) as the scripts do: w = (w_max - w_min)·u + w_min, with the
// difference taken in Python floats and the rest in float32.
func GuidanceScale(u float32, wMin, wMax float64) float32 {
	return float32(float32(wMax-wMin)*u) + float32(wMin)
}

// ApplyGuidance is the LCM-paper form of classifier-free guidance the
// teacher uses during distillation: cond + w·(cond - uncond), elementwise in
// float32 (Imagen/diffusers CFG with scale 1 + w). It applies to x0 and eps
// estimates alike.
func ApplyGuidance(cond, uncond []float32, w float32) []float32 {
	if len(cond) != len(uncond) {
		panic(fmt.Sprintf("lcm: ApplyGuidance with %d cond and %d uncond elements", len(cond), len(uncond)))
	}
	out := make([]float32, len(cond))
	for i := range cond {
		out[i] = cond[i] + float32(w*(cond[i]-uncond[i]))
	}
	return out
}

// expf is the float32 exp of torch's CPU kernels: Vectorized<float>::exp
// calls SLEEF's Sleef_expf8_u10 (AVX2, with FMA), which is within 1 ulp but
// not always correctly rounded. Embedding frequencies are multiplied by
// w·1000 or t before the sine, so one ulp in a frequency moves the result by
// up to 1e-3; a correctly rounded exp misses the fixtures by that much.
// This is SLEEF 3.x's xexpf, step for step.
func expf(d float32) float32 {
	const (
		rLn2 = float32(1.442695040888963407359924681001892137426645954152985934135449406931)
		l2U  = float32(0.693145751953125)
		l2L  = float32(1.428606765330187045e-06)
	)
	if d < -104 {
		return 0
	}
	if d > 100 {
		return float32(math.Inf(1))
	}
	q := int32(math.RoundToEven(float64(d * rLn2))) // vrint_vi2_vf: round to nearest even
	qf := float32(q)
	s := fma32(qf, -l2U, d)
	s = fma32(qf, -l2L, s)
	u := float32(0.000198527617612853646278381)
	u = fma32(u, s, 0.00139304355252534151077271)
	u = fma32(u, s, 0.00833336077630519866943359)
	u = fma32(u, s, 0.0416664853692054748535156)
	u = fma32(u, s, 0.166666671633720397949219)
	u = fma32(u, s, 0.5)
	u = 1 + fma32(float32(s*s), u, s)
	// vldexp2: u·2^(q>>1)·2^(q-(q>>1)), exact in this range.
	return float32(math.Ldexp(float64(u), int(q)))
}
