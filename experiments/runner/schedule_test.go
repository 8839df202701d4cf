package runner

import (
	"math"
	"strings"
	"testing"

	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/models/unet"
)

// TestLRMultiplierMatchesDiffusers checks the schedules at points where
// diffusers' get_scheduler lambdas have simple values (warmup 10, 110
// steps in all).
func TestLRMultiplierMatchesDiffusers(t *testing.T) {
	for _, c := range []struct {
		schedule string
		step     int
		want     float64
	}{
		{"constant", 0, 1}, {"constant", 77, 1},
		{"constant_with_warmup", 0, 0}, {"constant_with_warmup", 5, 0.5}, {"constant_with_warmup", 10, 1}, {"constant_with_warmup", 90, 1},
		{"linear", 5, 0.5}, {"linear", 10, 1}, {"linear", 60, 0.5}, {"linear", 110, 0}, {"linear", 200, 0},
		{"cosine", 5, 0.5}, {"cosine", 10, 1}, {"cosine", 60, 0.5}, {"cosine", 110, 0}, {"cosine", 35, 0.5 * (1 + math.Cos(math.Pi/4))},
	} {
		got, err := LRMultiplier(c.schedule, c.step, 10, 110)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s at step %d: %v, want %v", c.schedule, c.step, got, c.want)
		}
	}
	if _, err := LRMultiplier("polynomial", 0, 0, 10); err == nil || !strings.Contains(err.Error(), "optim.schedule") {
		t.Errorf("unknown schedule: err = %v, want one naming optim.schedule", err)
	}
}

// TestFullStudentAddsGuidanceProjection: the student is the teacher plus a
// cond_proj drawn uniformly in ±1/sqrt(dim) (PyTorch's Linear init), the
// same for the same seed.
func TestFullStudentAddsGuidanceProjection(t *testing.T) {
	cfg, raw, err := unet.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	teacher := &unet.Model{Config: cfg, Weights: nn.RandomWeights(cfg.ParamShapes(), 1, 1), RawConfig: raw}
	student, scfg, err := FullStudent(teacher, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	if scfg.TimeCondProjDim == nil || *scfg.TimeCondProjDim != 64 || teacher.Config.TimeCondProjDim != nil {
		t.Fatalf("student config time_cond_proj_dim %v; the teacher's must stay unset", scfg.TimeCondProjDim)
	}
	if err := nn.CheckSchema("student", scfg.ParamShapes(), student); err != nil {
		t.Fatal(err)
	}
	for _, name := range teacher.Weights.Names() {
		a, _, _ := teacher.Weights.Float32(name)
		b, _, _ := student.Float32(name)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s differs from the teacher", name)
			}
		}
	}
	w, dims, _ := student.Float32("time_embedding.cond_proj.weight")
	bound := 1 / math.Sqrt(64)
	var sum, sq float64
	for _, v := range w {
		if math.Abs(float64(v)) > bound {
			t.Fatalf("cond_proj value %v outside ±%v", v, bound)
		}
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(len(w))
	// A uniform draw in ±b has mean 0 and variance b²/3.
	if mean, variance := sum/n, sq/n; math.Abs(mean) > 0.1*bound || math.Abs(variance-bound*bound/3) > 0.2*bound*bound/3 {
		t.Errorf("cond_proj %v: mean %v, variance %v; want about 0 and %v", dims, mean, variance, bound*bound/3)
	}
	again, _, err := FullStudent(teacher, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	w2, _, _ := again.Float32("time_embedding.cond_proj.weight")
	for i := range w {
		if w[i] != w2[i] {
			t.Fatal("the same seed gave a different cond_proj")
		}
	}
}
