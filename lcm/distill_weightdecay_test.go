package lcm

import (
	"math"
	"testing"

	"github.com/golcm/golcm/backend"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/losses"
	"github.com/golcm/golcm/models/nn"
)

// TestWeightDecayIsAdamW: with weight decay λ the step is torch's AdamW,
// p ← p·(1 − lr·λ) − lr·m̂/(√v̂ + ε): on the same batch (same gradients) the
// student differs from the λ = 0 step by exactly −lr·λ·p_before, element by
// element, up to float32 rounding of p.
func TestWeightDecayIsAdamW(t *testing.T) {
	b, _, err := backend.Default("")
	if err != nil {
		t.Fatal(err)
	}
	f := loadLCDFixture(t, golden.Load(t, "tiny-sd-golden"))
	teacher := f.teacher
	before, studentCfg := f.student(t)
	const lr, decay = 1e-3, 0.3
	batch := f.batch(t, *studentCfg.TimeCondProjDim)
	batch.LR = lr
	step := func(weightDecay float64) *Distiller {
		student, err := before.Clone()
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDistiller(b, DistillConfig{
			Mode: Full, Teacher: teacher.Config, Student: studentCfg, PredictionType: f.schedule.PredictionType,
			Loss: losses.L2, MaxGradNorm: 1, Beta1: 0.9, Beta2: 0.999, AdamEps: 1e-8, EMADecay: 0.95,
			WeightDecay: weightDecay, NN: nn.Options{ConvIm2Col: true},
		}, teacher.Weights, student)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Step(batch); err != nil {
			t.Fatal(err)
		}
		return d
	}
	plain, decayed := step(0), step(decay)
	worst, moved := 0.0, 0.0
	for _, name := range before.Names() {
		p0, _, _ := before.Float32(name)
		p1, _, _ := plain.Student.Float32(name)
		p2, _, _ := decayed.Student.Float32(name)
		for i := range p0 {
			want := -lr * decay * float64(p0[i])
			got := float64(p2[i]) - float64(p1[i])
			// The step computes on the scale of p and stores float32:
			// allow 2 ulps of the larger of p before and after.
			scale := float32(max(math.Abs(float64(p0[i])), math.Abs(float64(p1[i]))))
			ulp := float64(math.Nextafter32(scale, float32(math.Inf(1))) - scale)
			if err := math.Abs(got - want); err > 2*ulp {
				t.Fatalf("%s[%d]: decay moved it by %g, AdamW says −lr·λ·p = %g", name, i, got, want)
			}
			worst = max(worst, math.Abs(got-want))
			moved = max(moved, math.Abs(want))
		}
	}
	t.Logf("largest decay −lr·λ·p %.3g, largest deviation from it %.3g", moved, worst)
	if moved == 0 {
		t.Fatal("no weight to decay")
	}
}
