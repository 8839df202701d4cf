package unet_test

import (
	"path/filepath"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// TestGoldenUNet checks every unet.* output entry of every sidecar against
// diffusers' UNet2DConditionModel, on both convolution lowerings.
func TestGoldenUNet(t *testing.T) {
	b, choice, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(backend.Describe(b, choice))
	for _, s := range golden.Sidecars(t) {
		if !s.Has("unet.sample") {
			continue
		}
		ts, _ := s.Int64(t, "unet.timesteps")
		in := unet.HostInputs{
			Sample:    s.Tensor(t, "unet.sample"),
			Timesteps: tensors.FromFlatDataAndDimensions(ts, len(ts)),
			Context:   s.Tensor(t, "unet.encoder_hidden_states"),
		}
		if s.Has("unet.text_embeds") {
			in.TextEmbeds = s.Tensor(t, "unet.text_embeds")
			in.TimeIDs = s.Tensor(t, "unet.time_ids")
		}
		cases := []struct {
			entry, dir string
			cond       bool
		}{
			{"unet.out", s.ModelDir, true},
			{"unet.teacher_out", s.TeacherDir, false},
			{"unet.teacher_out", s.ModelDir, false},
			{"unet.student_out", s.ModelDir, true},
		}
		for _, c := range cases {
			if !s.Has(c.entry) || c.dir == "" {
				continue
			}
			m, err := unet.Load(filepath.Join(c.dir, "unet"), "")
			if err != nil {
				t.Fatal(err)
			}
			if c.entry == "unet.student_out" {
				// The SDXL student is the teacher plus a cond_proj.
				w, shape := s.Float32(t, "unet.student_cond_proj.weight")
				m.Weights.SetFloat32("time_embedding.cond_proj.weight", w, shape...)
				dim := shape[1]
				m.Config.TimeCondProjDim = &dim
			}
			if (m.Config.TimeCondProjDim != nil) != c.cond {
				continue // the entry belongs to the other model folder
			}
			hin := in
			if c.cond {
				hin.TimestepCond = s.Tensor(t, "unet.timestep_cond")
			}
			for _, im2col := range []bool{true, false} {
				for _, dt := range []dtypes.DType{dtypes.InvalidDType, dtypes.Float64} {
					out, err := unet.NewRunner(b, m, nn.Options{ConvIm2Col: im2col, ComputeDType: dt}).Forward(hin)
					if err != nil {
						t.Fatalf("%s %s: %v", s.Name, c.entry, err)
					}
					got, dims, err := nn.TensorFloat32(out)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("im2col=%v dtype=%s", im2col, dt)
					s.CheckFloat32(t, c.entry, got, dims)
				}
			}
		}
	}
}
