package lcm

import (
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/lora"
	"github.com/golcm/golcm/models/nn"
)

// TestLoRADistillationStep runs LoRA distillation on the fixture teacher
// with a fixed batch: the loss goes down over a few steps, only adapter
// weights change, and the first step's teacher and target tensors equal
// those of the full-distillation path with a student that has no guidance
// embedding (a LoRA with B = 0 is the teacher).
func TestLoRADistillationStep(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	s := golden.Load(t, "tiny-sd-golden")
	f := loadLCDFixture(t, s)
	schedule, teacher := f.schedule, f.teacher
	batch := f.batch(t, 0)
	base := DistillConfig{
		Teacher: teacher.Config, Student: teacher.Config, PredictionType: schedule.PredictionType,
		Loss: losses.Huber, HuberC: 0.001, MaxGradNorm: 1, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8,
		EMADecay: 0.95, NN: nn.Options{ConvIm2Col: true}, Debug: true,
	}

	adapters, err := lora.New(teacher.Config.ParamShapes(), lora.Config{Rank: 4, Alpha: 4}, 3)
	if err != nil {
		t.Fatal(err)
	}
	cfg := base
	cfg.Mode, cfg.Adapters = LoRA, adapters.Lookup
	initial, err := adapters.Weights.Clone()
	if err != nil {
		t.Fatal(err)
	}
	baseBefore, err := teacher.Weights.Clone()
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDistiller(b, cfg, teacher.Weights, adapters.Weights)
	if err != nil {
		t.Fatal(err)
	}
	batch.LR = 1e-3
	var lossCurve []float32
	var first *StepResult
	for range 6 {
		res, err := d.Step(batch)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = res
		}
		lossCurve = append(lossCurve, res.Loss)
	}
	t.Logf("LoRA losses on a fixed batch: %v", lossCurve)
	if last := lossCurve[len(lossCurve)-1]; !(last < lossCurve[0]) {
		t.Errorf("loss did not go down: %v", lossCurve)
	}
	if n := changed(t, baseBefore, teacher.Weights); n != 0 {
		t.Errorf("%d base UNet weights changed; only adapters may train", n)
	}
	if n := changed(t, initial, adapters.Weights); n != adapters.Weights.Len() {
		t.Errorf("%d of %d adapter weights changed, want all", n, adapters.Weights.Len())
	}

	// The full path with a student without w-embedding, equal to the
	// teacher: its first step sees the same teacher and target tensors.
	student, err := baseBefore.Clone()
	if err != nil {
		t.Fatal(err)
	}
	full := base
	full.Mode = Full
	fd, err := NewDistiller(b, full, baseBefore, student)
	if err != nil {
		t.Fatal(err)
	}
	batch.LR = 1e-3
	fres, err := fd.Step(batch)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cond_teacher_output", "uncond_teacher_output", "pred_x0", "pred_noise", "x_prev", "target_noise_pred", "target", "model_pred"} {
		got, _, _ := nn.TensorFloat32(first.Debug[name])
		want, _, _ := nn.TensorFloat32(fres.Debug[name])
		diff := golden.MaxAbsDiff(got, want)
		t.Logf("%s: LoRA vs full max_abs_diff=%.3g", name, diff)
		if diff > 1e-6 {
			t.Errorf("%s differs between the LoRA and full paths by %g", name, diff)
		}
	}
	if first.Loss != fres.Loss {
		t.Errorf("first-step loss: LoRA %v, full %v", first.Loss, fres.Loss)
	}
}

// changed counts the weights whose values differ between two sets.
func changed(t *testing.T, before, after *nn.Weights) int {
	n := 0
	for _, name := range before.Names() {
		x, _, _ := before.Float32(name)
		y, _, err := after.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		if golden.MaxAbsDiff(x, y) != 0 {
			n++
		}
	}
	return n
}

// TestLoRADropoutStep: with lora_dropout the step draws its masks from the
// batch's seed: the same seeds give bit-identical adapters, another seed or
// no dropout gives others; the teacher passes never see the adapters, and
// the target pass drops out too (the reference's PEFT model is in train
// mode there).
func TestLoRADropoutStep(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	s := golden.Load(t, "tiny-sd-golden")
	f := loadLCDFixture(t, s)
	teacher := f.teacher
	run := func(dropout float64, seeds ...int64) (*nn.Weights, []*StepResult) {
		adapters, err := lora.New(teacher.Config.ParamShapes(), lora.Config{Rank: 4, Alpha: 4, Dropout: dropout}, 3)
		if err != nil {
			t.Fatal(err)
		}
		cfg := DistillConfig{
			Mode: LoRA, Teacher: teacher.Config, Student: teacher.Config, PredictionType: f.schedule.PredictionType,
			Loss: losses.Huber, HuberC: 0.001, MaxGradNorm: 1, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8,
			NN: nn.Options{ConvIm2Col: true}, Debug: true, Adapters: adapters.Lookup,
		}
		if dropout > 0 {
			cfg.DropoutAdapters = adapters.TrainingLookup
		}
		d, err := NewDistiller(b, cfg, teacher.Weights, adapters.Weights)
		if err != nil {
			t.Fatal(err)
		}
		var results []*StepResult
		for _, seed := range seeds {
			batch := f.batch(t, 0)
			batch.LR, batch.DropoutSeed = 1e-3, seed
			res, err := d.Step(batch)
			if err != nil {
				t.Fatal(err)
			}
			results = append(results, res)
		}
		return adapters.Weights, results
	}
	a1, r1 := run(0.5, 11, 12)
	a2, _ := run(0.5, 11, 12)
	a3, r3 := run(0.5, 11, 13)
	a0, r0 := run(0, 11, 12)
	if n := changed(t, a1, a2); n != 0 {
		t.Errorf("same dropout seeds: %d adapter weights differ, want none", n)
	}
	if n := changed(t, a1, a3); n == 0 {
		t.Errorf("another dropout seed changed no adapter weight")
	}
	if n := changed(t, a1, a0); n == 0 {
		t.Errorf("dropout 0.5 and no dropout trained identical adapters")
	}
	diff := func(x, y *StepResult, name string) float64 {
		got, _, _ := nn.TensorFloat32(x.Debug[name])
		want, _, _ := nn.TensorFloat32(y.Debug[name])
		return golden.MaxAbsDiff(got, want)
	}
	for _, name := range []string{"cond_teacher_output", "uncond_teacher_output"} {
		if d := diff(r1[1], r0[1], name); d != 0 {
			t.Errorf("%s changed by %g with dropout; the teacher has no adapters", name, d)
		}
	}
	// Step 2 starts from equal adapters (step 1 used seed 11 in both runs)
	// with B ≠ 0, so the target pass differs only by its dropout masks.
	if d := diff(r1[1], r3[1], "target_noise_pred"); d == 0 {
		t.Errorf("target pass identical under different dropout seeds: dropout is off there")
	}
	t.Logf("losses: dropout seeds 11,12 %v/%v; 11,13 %v/%v; no dropout %v/%v",
		r1[0].Loss, r1[1].Loss, r3[0].Loss, r3[1].Loss, r0[0].Loss, r0[1].Loss)
}
