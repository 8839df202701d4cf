package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/internal/golden"
	"github.com/golcm/golcm/models/pipeline"
)

// metricLines reads a run's metrics.jsonl.
func metricLines(t *testing.T, out string) []map[string]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := map[string]float64{}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	return lines
}

// TestMixedPrecisionLossCurvesTrackFloat32 distills the tiny teacher for
// six steps in float32, bf16 and fp16 (full and LoRA) from the same seed
// and data: the mixed-precision losses stay within maxRel of the float32
// loss at every step. The bound: one bf16 step's loss differs from the
// float32 one by ~2.5% on the fixtures (lcm's TestMixedPrecisionStep,
// which bounds it from the measured output errors), and over six Adam
// steps at lr 1e-3 the weights move by ~lr per element per step, so the
// rounding's effect on the trajectory stays of that order; 10% for bf16
// (and a quarter of it for fp16, 3 more bits) is that with margin, while a
// step computed wrongly (a missing cast, a norm in the wrong dtype that
// overflows) moves the loss by far more or makes it NaN.
func TestMixedPrecisionLossCurvesTrackFloat32(t *testing.T) {
	root := t.TempDir()
	teacher := filepath.Join(root, "teacher")
	for _, mode := range []string{"full", "lora"} {
		run := func(mp string) []float32 {
			s := tinySpec(t, teacher, filepath.Join(root, mode+"-"+mp))
			s.Run.MixedPrecision, s.Distill.Mode = mp, mode
			// A scale the tiny teacher's gradients never overflow at: a
			// skipped step would leave the float32 trajectory (65536
			// overflows its second full step; TestFP16LossScaleResumesAndCounts).
			s.Run.LossScaleInit = 1024
			if mode == "lora" {
				s.LoRA.Rank, s.LoRA.Alpha = 4, 8
			}
			res, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
			if err != nil {
				t.Fatalf("%s %s: %v", mode, mp, err)
			}
			return res.Losses
		}
		ref := run("no")
		for mp, maxRel := range map[string]float64{"bf16": 0.10, "fp16": 0.025} {
			got := run(mp)
			worst := 0.0
			for i := range ref {
				rel := math.Abs(float64(got[i])-float64(ref[i])) / float64(ref[i])
				worst = max(worst, rel)
				if !(rel <= maxRel) {
					t.Errorf("%s %s step %d: loss %v, float32 %v: off by %.3g, more than %g", mode, mp, i+1, got[i], ref[i], rel, maxRel)
				}
			}
			t.Logf("%s %s: losses %v, float32 %v (worst relative difference %.3g)", mode, mp, got, ref, worst)
		}
	}
}

// TestFP16LossScaleResumesAndCounts: an fp16 run logs its loss scale and
// skipped steps, and the scale follows GradScaler's rule replayed here from
// the skipped steps logged (halve on a skip, ×2 after every 2 good steps in
// a row); a killed and resumed run logs the same scales from step 3 on, so
// it continued from the checkpoint's scale, not a fresh 65536, with the
// uninterrupted run's losses.
func TestFP16LossScaleResumesAndCounts(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "killed")
	checkResumeMatches(t, root, out, func(s *spec.Spec) {
		s.Run.MixedPrecision, s.Run.LossScaleGrowthInterval = "fp16", 2
	})
	whole, resumed := metricLines(t, filepath.Join(root, "whole")), metricLines(t, out)
	if len(whole) != 6 || len(resumed) != 6 {
		t.Fatalf("metrics lines: %d uninterrupted, %d resumed; want 6 each", len(whole), len(resumed))
	}
	scale, good, skipped := 65536.0, 0, 0.0
	for i, m := range whole {
		if m["skipped_steps"] > skipped {
			scale, good, skipped = scale/2, 0, m["skipped_steps"]
		} else if good++; good == 2 {
			scale, good = scale*2, 0
		}
		if m["loss_scale"] != scale {
			t.Errorf("step %v: loss_scale %v, want %v (skipped steps so far %v)", m["step"], m["loss_scale"], scale, m["skipped_steps"])
		}
		if r := resumed[i]; r["loss_scale"] != m["loss_scale"] || r["step"] != m["step"] {
			t.Errorf("resumed run's step %v: loss_scale %v, uninterrupted %v", r["step"], r["loss_scale"], m["loss_scale"])
		}
	}
}

// TestFP16OverflowSkipsSteps starts fp16 loss scaling at 2^40: the loss
// gradient reaching the float16 UNet outputs, 2·(pred−target)/n times the
// scale, is then past float16's 65504 for any |pred−target| above ~1e-5·n,
// so the six steps are skipped. The run does not stop; every line of
// metrics.jsonl says loss_scale = 2^40·2^−skipped_steps; and the final
// checkpoint shows nothing stepped: both Adam moments are still zero and
// the EMA target equals the student.
func TestFP16OverflowSkipsSteps(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "x")
	s := tinySpec(t, filepath.Join(root, "teacher"), out)
	s.Run.MixedPrecision, s.Run.LossScaleInit = "fp16", math.Ldexp(1, 40)
	if _, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true}); err != nil {
		t.Fatal(err)
	}
	lines := metricLines(t, out)
	if len(lines) != 6 {
		t.Fatalf("%d metrics lines, want 6", len(lines))
	}
	for _, m := range lines {
		if want := math.Ldexp(1, 40-int(m["skipped_steps"])); m["loss_scale"] != want {
			t.Errorf("step %v: loss_scale %v with %v skipped steps, want %v", m["step"], m["loss_scale"], m["skipped_steps"], want)
		}
	}
	if last := lines[len(lines)-1]; last["skipped_steps"] != 6 {
		t.Errorf("%v of 6 steps skipped at loss scale 2^40, want all", last["skipped_steps"])
	}
	ck, _, err := loadCheckpoint(filepath.Join(out, checkpointsDir, checkpointName(6)), []string{"student", "target", "adam_m", "adam_v"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ck["student"].Names() {
		m, _, _ := ck["adam_m"].Float32(name)
		v, _, _ := ck["adam_v"].Float32(name)
		w, _, _ := ck["student"].Float32(name)
		e, _, _ := ck["target"].Float32(name)
		for i := range m {
			if m[i] != 0 || v[i] != 0 || w[i] != e[i] {
				t.Fatalf("%s[%d]: adam m %v, v %v, student %v, target %v after six skipped steps; want 0, 0 and equal", name, i, m[i], v[i], w[i], e[i])
			}
		}
	}
}

// TestMixedPrecisionValidatesAndDropsOut: the parts of a run beside the
// step take the half-precision frozen networks too. LoRA dropout draws its
// masks in the low precision, and validation samples with the bf16/fp16
// text encoders, VAE and (LoRA) base UNet: each run of two steps ends with
// finite losses and its validation grid.
func TestMixedPrecisionValidatesAndDropsOut(t *testing.T) {
	root := t.TempDir()
	for _, mode := range []string{"full", "lora"} {
		for _, mp := range []string{"bf16", "fp16"} {
			out := filepath.Join(root, mode+"-"+mp)
			s := tinySpec(t, filepath.Join(root, "teacher"), out)
			s.Run.MixedPrecision, s.Distill.Mode = mp, mode
			if mode == "lora" {
				s.LoRA.Rank, s.LoRA.Alpha, s.LoRA.Dropout = 4, 8, 0.3
			}
			s.Optim.MaxTrainSteps, s.Run.ValidationEvery = 2, 2
			s.Run.ValidationPrompts, s.Run.ValidationInferenceSteps = []string{"a shoe"}, []int{1}
			res, err := Run(context.Background(), s, Options{Log: io.Discard, NoProgress: true})
			if err != nil {
				t.Fatalf("%s %s: %v", mode, mp, err)
			}
			for _, l := range res.Losses {
				if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
					t.Errorf("%s %s: losses %v", mode, mp, res.Losses)
				}
			}
			if _, err := os.Stat(validationGrid(out, "student", 2)); err != nil {
				t.Errorf("%s %s: no validation grid: %v", mode, mp, err)
			}
		}
	}
}

// frozenBytes reads the run log's "frozen weights …(A and B bytes)": the
// frozen weights' bytes as stored, and in float32.
func frozenBytes(t *testing.T, log string) (low, full float64) {
	t.Helper()
	m := regexp.MustCompile(`frozen weights .*\((\d+) and (\d+) bytes\)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the run log does not report the frozen weights' size:\n%s", log)
	}
	low, _ = strconv.ParseFloat(m[1], 64)
	full, _ = strconv.ParseFloat(m[2], 64)
	return low, full
}

// TestMixedPrecisionKeepsSDXLVAEFloat32: an SD run in bf16 stores every
// frozen network in half its float32 bytes; an SDXL run in fp16 (the
// fixture pipeline) keeps its VAE in float32, as the SDXL scripts do, so
// its frozen weights are more than half, by the VAE's half, and it trains
// and validates (in float32, for that VAE) with finite losses.
func TestMixedPrecisionKeepsSDXLVAEFloat32(t *testing.T) {
	root := t.TempDir()
	var log strings.Builder
	s := tinySpec(t, filepath.Join(root, "teacher"), filepath.Join(root, "sd"))
	s.Run.MixedPrecision, s.Optim.MaxTrainSteps = "bf16", 1
	if _, err := Run(context.Background(), s, Options{Log: &log, NoProgress: true}); err != nil {
		t.Fatal(err)
	}
	if low, full := frozenBytes(t, log.String()); 2*low != full {
		t.Errorf("SD bf16: frozen weights %v bytes, float32 %v: want half", low, full)
	}

	dir := filepath.Join(golden.Dir(), "tiny-sdxl")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("fixture pipeline %s not found (set %s): %v", dir, golden.EnvDir, err)
	}
	p, err := pipeline.Load(dir, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	vae := float64(p.VAE.Weights.Bytes())
	log.Reset()
	s = tinySpec(t, dir, filepath.Join(root, "sdxl"))
	s.Model.InitTiny, s.Distill.WMin = false, 3
	s.Run.MixedPrecision, s.Optim.MaxTrainSteps = "fp16", 2
	s.Run.ValidationEvery, s.Run.ValidationInferenceSteps, s.Run.ValidationPrompts = 2, []int{1}, []string{"a cat"}
	res, err := Run(context.Background(), s, Options{Log: &log, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	low, full := frozenBytes(t, log.String())
	if want := (full-vae)/2 + vae; low != want {
		t.Errorf("SDXL fp16: frozen weights %v bytes of %v; want %v (the %v-byte VAE kept float32)", low, full, want, vae)
	}
	for _, l := range res.Losses {
		if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
			t.Errorf("SDXL fp16 losses %v", res.Losses)
		}
	}
	if _, err := os.Stat(validationGrid(s.Run.OutputDir, "student", 2)); err != nil {
		t.Errorf("SDXL fp16: no validation grid: %v", err)
	}
}

// TestMixedPrecisionFromCache: a bf16 run from a latent cache (no VAE or
// text encoders in memory while it trains) converts the frozen networks it
// has, loads the encoders for validation and run.eval_every's evaluation in
// the same precision, and writes the grid and the evaluation; the log's
// frozen bytes are half the float32 ones.
func TestMixedPrecisionFromCache(t *testing.T) {
	root, images, teacher, cache := cachedFixture(t)
	out := filepath.Join(root, "run")
	s := cacheSpec(t, teacher, images, out)
	s.Data.Cache, s.Run.MixedPrecision = cache, "bf16"
	s.Optim.MaxTrainSteps, s.Run.ValidationEvery = 2, 2
	s.Run.ValidationPrompts, s.Run.ValidationInferenceSteps = []string{"a shoe"}, []int{1}
	s.Run.EvalEvery, s.Eval.ReferenceSteps, s.Eval.StudentSteps, s.Eval.Prompts = 2, 2, []int{1}, []string{"a cat"}
	var log strings.Builder
	res, err := Run(context.Background(), s, Options{Log: &log, NoProgress: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res.Losses {
		if math.IsNaN(float64(l)) || math.IsInf(float64(l), 0) {
			t.Fatalf("losses %v", res.Losses)
		}
	}
	if _, err := os.Stat(validationGrid(out, "student", 2)); err != nil {
		t.Errorf("no validation grid: %v", err)
	}
	if _, err := os.Stat(filepath.Join(evalDir(out, 2), "eval.json")); err != nil {
		t.Errorf("no evaluation: %v", err)
	}
	low, full := frozenBytes(t, log.String())
	if low != full/2 {
		t.Errorf("frozen weights %g bytes, want half of %g", low, full)
	}
	if n := strings.Count(log.String(), "mixed precision bf16: frozen weights"); n != 2 {
		t.Errorf("the log reports %d conversions, want 2 (the UNet at the start, the encoders at validation):\n%s", n, log.String())
	}
}
