package lcm

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/nn"
)

// sampleOf cuts sample i out of a batch.
func sampleOf(t *testing.T, b *Batch, i int) *Batch {
	cut := func(x *tensors.Tensor) *tensors.Tensor {
		if x == nil {
			return nil
		}
		data, dims, err := nn.TensorFloat32(x)
		if err != nil {
			t.Fatal(err)
		}
		per := len(data) / dims[0]
		d := append([]int{1}, dims[1:]...)
		return tensors.FromFlatDataAndDimensions(append([]float32(nil), data[i*per:(i+1)*per]...), d...)
	}
	c := b.Coefs
	one := func(v []float32) []float32 { return []float32{v[i]} }
	cs := &StepCoefficients{
		Start: []int64{c.Start[i]}, End: []int64{c.End[i]},
		AlphaStart: one(c.AlphaStart), SigmaStart: one(c.SigmaStart), AlphaEnd: one(c.AlphaEnd), SigmaEnd: one(c.SigmaEnd),
		CSkipStart: one(c.CSkipStart), COutStart: one(c.COutStart), CSkipEnd: one(c.CSkipEnd), COutEnd: one(c.COutEnd),
		SqrtAlphaPrev: one(c.SqrtAlphaPrev), SqrtSigmaPrev: one(c.SqrtSigmaPrev), W: one(c.W),
	}
	if c.WEmbedding != nil {
		dim := len(c.WEmbedding) / len(c.W)
		cs.WEmbedding = c.WEmbedding[i*dim : (i+1)*dim]
	}
	return &Batch{
		Latents: cut(b.Latents), Noise: cut(b.Noise), PromptEmbeds: cut(b.PromptEmbeds), UncondEmbeds: cut(b.UncondEmbeds),
		TextEmbeds: cut(b.TextEmbeds), UncondTextEmbeds: cut(b.UncondTextEmbeds), TimeIDs: cut(b.TimeIDs),
		Coefs: cs, LR: b.LR,
	}
}

// TestGradientAccumulationEqualsBigBatch: two accumulated micro-batches of
// one sample give the clipped gradients and the update of one step on both
// samples at once (the loss is a mean, and each micro-batch is weighted 1/2).
func TestGradientAccumulationEqualsBigBatch(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	s := golden.Load(t, "tiny-sd-golden")
	f := loadLCDFixture(t, s)
	schedule, teacher := f.schedule, f.teacher
	initial, studentCfg := f.student(t)
	dim := *studentCfg.TimeCondProjDim
	batch := f.batch(t, dim)

	run := func(accumulation int, batches ...*Batch) (*Distiller, *StepResult) {
		student, err := initial.Clone()
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDistiller(b, DistillConfig{
			Mode: Full, Teacher: teacher.Config, Student: studentCfg, PredictionType: schedule.PredictionType,
			Loss: losses.L2, MaxGradNorm: 1, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8, EMADecay: 0.95,
			AccumulationSteps: accumulation, NN: nn.Options{ConvIm2Col: true}, Debug: true,
		}, teacher.Weights, student)
		if err != nil {
			t.Fatal(err)
		}
		var res *StepResult
		for i, mb := range batches {
			if res, err = d.Step(mb); err != nil {
				t.Fatal(err)
			}
			if applied := i == len(batches)-1; res.Applied != applied {
				t.Fatalf("micro-batch %d: Applied = %v, want %v", i, res.Applied, applied)
			}
		}
		return d, res
	}
	big, bigRes := run(1, batch)
	acc, accRes := run(2, sampleOf(t, batch, 0), sampleOf(t, batch, 1))
	if big.Steps != 1 || acc.Steps != 1 {
		t.Fatalf("steps: %d and %d, want 1 each", big.Steps, acc.Steps)
	}
	if d := math.Abs(float64(bigRes.GradNorm - accRes.GradNorm)); d > 1e-4*float64(bigRes.GradNorm) {
		t.Errorf("grad norm: one batch %v, accumulated %v", bigRes.GradNorm, accRes.GradNorm)
	}
	worstGrad, worstParam := 0.0, 0.0
	for _, name := range big.Student.Names() {
		g1, _, _ := nn.TensorFloat32(bigRes.Debug["grad."+name])
		g2, _, _ := nn.TensorFloat32(accRes.Debug["grad."+name])
		for i := range g1 {
			worstGrad = math.Max(worstGrad, math.Abs(float64(g1[i]-g2[i]))/math.Max(1e-3, math.Abs(float64(g1[i]))))
		}
		p1, _, _ := big.Target.Float32(name)
		p2, _, _ := acc.Target.Float32(name)
		worstParam = math.Max(worstParam, golden.MaxAbsDiff(p1, p2))
	}
	t.Logf("relative grad difference %.3g, target weight difference %.3g", worstGrad, worstParam)
	if worstGrad > 1e-3 {
		t.Errorf("accumulated gradients differ from the big batch's by %g (relative)", worstGrad)
	}
	// EMA target = 0.95·old + 0.05·student: Adam's sign-like first step
	// moves each weight by lr·sign(g); tiny gradients may flip sign.
	if worstParam > 2*0.05*1e-4+1e-7 {
		t.Errorf("target weights differ by %g", worstParam)
	}
}
