package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/golcm/golcm/lcm"
)

// MetricsFile is the JSON-lines log of a run, one object per logged step.
const MetricsFile = "metrics.jsonl"

// openMetrics opens metrics.jsonl for appending. On resume, lines past the
// checkpoint's step (written by the run that was killed) are dropped, so the
// file tells one consistent story.
func (r *run) openMetrics(resumedStep int) error {
	path := filepath.Join(r.spec.Run.OutputDir, MetricsFile)
	if data, err := os.ReadFile(path); err == nil {
		var kept bytes.Buffer
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m struct {
				Step int `json:"step"`
			}
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Step <= resumedStep && resumedStep > 0 {
				kept.Write(sc.Bytes())
				kept.WriteByte('\n')
			}
		}
		if err := os.WriteFile(path, kept.Bytes(), 0o644); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	r.metrics = f
	return nil
}

// logMetrics writes one line every run.log_every steps (and on the last).
func (r *run) logMetrics(res *lcm.StepResult, lr float64, elapsed time.Duration, ran int) error {
	step := r.task.trainer().Steps
	every := max(r.spec.Run.LogEvery, 1)
	if step%every != 0 && step != r.spec.Optim.MaxTrainSteps {
		return nil
	}
	m := map[string]any{
		"step":        step,
		"loss":        res.Loss,
		"grad_norm":   res.GradNorm,
		"lr":          lr,
		"steps_per_s": float64(ran) / elapsed.Seconds(),
		"elapsed_s":   elapsed.Seconds(),
	}
	if res.Skipped {
		m["grad_norm"] = nil // fp16 loss scaling skipped the step: its gradients overflowed (JSON has no inf)
	}
	for k, v := range r.loader.Stats().Metrics() {
		m[k] = v
	}
	for k, v := range r.task.metrics() {
		m[k] = v
	}
	return r.logLine(m)
}

// logLine appends one JSON object to metrics.jsonl; it must hold "step".
func (r *run) logLine(m map[string]any) error {
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = r.metrics.Write(append(line, '\n'))
	return err
}
