package pipeline

// fashionVAEConfig is an AutoencoderKL with a ×4 downsampling (three
// levels) for 32×32 Fashion-MNIST images: 8×8×4 latents, the "fashion"
// UNet's sample_size. The widths grow as the resolution falls (16 channels
// at 32×32, 64 at 8×8) because the full-resolution convolutions dominate
// its cost: (32, 64, 64) trained about 3× slower on two cores. Its
// scaling_factor of 1 is a placeholder: the vae task sets it to 1/std of
// the trained encoder's latents (diffusers' convention).
var fashionVAEConfig = map[string]any{
	"_class_name":        "AutoencoderKL",
	"_diffusers_version": diffusersVersion,
	"act_fn":             "silu",
	"block_out_channels": []int{16, 32, 64},
	"down_block_types":   []string{"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"},
	"up_block_types":     []string{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"},
	"force_upcast":       true,
	"in_channels":        3,
	"out_channels":       3,
	"latent_channels":    4,
	"layers_per_block":   1,
	"norm_num_groups":    8,
	"sample_size":        32,
	"scaling_factor":     1.0,
}

// InitFashion writes a randomly initialised pipeline to train from scratch on
// Fashion-MNIST at 32×32 (see InitTiny for the layout, the seed and the rules
// on dir): the "fashion" UNet preset on 8×8×4 latents, a ×4 VAE, and the tiny
// pipeline's 2-layer 64-wide CLIP text encoder and tokenizer, which stay
// frozen and random: distinct prompts still give distinct embeddings, which
// is all a teacher trained from scratch needs of them.
func InitFashion(dir string, seed uint64) error {
	return randomPipeline{name: "fashion", unetPreset: "fashion", vae: fashionVAEConfig, encoder: tinyTextEncoder}.write(dir, seed)
}
