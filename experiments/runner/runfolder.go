package runner

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/models/nn"
)

// The rules of an output folder: one run per folder. A fresh run does not
// start over another run's checkpoints or exports unless run.overwrite says
// so; a resumed run continues only the experiment its checkpoint was made
// by; nothing of a previous run is changed before the new run has loaded its
// models and restored its checkpoint.

// exportsDir holds the exports of a run's checkpoints (ExportCheckpoint).
const exportsDir = "exports"

// exportArtifacts are the names a run's export writes into its output
// folder (exportLoRA's files match loraArtifact).
var exportArtifacts = []string{"unet", "unet_target", "model_index.json", "scheduler", "vae",
	"text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", exportsDir}

// loraArtifact reports whether name is a LoRA file a run exports.
func loraArtifact(name string) bool {
	return strings.HasPrefix(name, "pytorch_lora_weights") && strings.HasSuffix(name, ".safetensors")
}

// previousRun lists what out holds of an earlier run: checkpoints and
// exports (with checkpoints false, exports only).
func previousRun(out string, checkpoints bool) ([]string, error) {
	var found []string
	if checkpoints {
		all, err := listCheckpoints(out)
		if err != nil {
			return nil, err
		}
		if len(all) > 0 {
			found = append(found, fmt.Sprintf("%d checkpoints up to %s", len(all), filepath.Base(all[len(all)-1])))
		}
	}
	entries, err := os.ReadDir(out)
	if errors.Is(err, os.ErrNotExist) {
		return found, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if n := e.Name(); n == "unet" || n == "vae" || n == "model_index.json" || n == exportsDir || loraArtifact(n) {
			found = append(found, n)
		}
	}
	return found, nil
}

// claimRunFolder decides, before anything in the output folder changes,
// whether this run may use it, and returns the checkpoints to resume from,
// newest first (none for a fresh start). A fresh run into a folder holding
// another run's checkpoints or exports is refused unless run.overwrite is
// set; then takeRunFolder clears them.
func (r *run) claimRunFolder() ([]string, error) {
	run := r.spec.Run
	out := run.OutputDir
	var candidates []string
	switch run.Resume {
	case "":
	case "latest":
		all, err := listCheckpoints(out)
		if err != nil {
			return nil, err
		}
		slices.Reverse(all)
		candidates = all
	default:
		if !isCheckpoint(run.Resume) {
			return nil, fmt.Errorf("run.resume = %q: not a checkpoint folder (no state.json)", run.Resume)
		}
		candidates = []string{run.Resume}
	}
	// A checkpoint of this folder continues its run; one from elsewhere
	// (another run's, to fine-tune from) starts a run here like a fresh one.
	if len(candidates) > 0 && (run.Resume == "latest" || sameDir(filepath.Dir(filepath.Dir(candidates[0])), out)) {
		return candidates, nil
	}
	prev, err := previousRun(out, true)
	if err != nil {
		return nil, err
	}
	if len(prev) > 0 && !run.Overwrite {
		return nil, fmt.Errorf("run.output_dir = %q holds another run (%s): continue it with -set run.resume=latest, start over with -set run.overwrite=true (deletes them), or choose another run.output_dir",
			out, strings.Join(prev, ", "))
	}
	return candidates, nil
}

// sameDir reports whether a and b name the same folder.
func sameDir(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// takeRunFolder makes the output folder this run's, once the run has
// loaded (resumeDir is the checkpoint restored, "" for none): unless it
// continues the folder's own run, run.overwrite deletes the previous run's
// checkpoints, exports, metrics, validation grids and evaluations; then it
// writes this run's config.toml.
func (r *run) takeRunFolder(resumeDir string) error {
	out := r.spec.Run.OutputDir
	continuing := resumeDir != "" && sameDir(filepath.Dir(filepath.Dir(resumeDir)), out)
	if !continuing && r.spec.Run.Overwrite {
		names := append([]string{checkpointsDir, MetricsFile, "validation", "eval"}, exportArtifacts...)
		entries, _ := os.ReadDir(out)
		for _, e := range entries {
			if loraArtifact(e.Name()) {
				names = append(names, e.Name())
			}
		}
		for _, n := range names {
			if err := os.RemoveAll(filepath.Join(out, n)); err != nil {
				return fmt.Errorf("run.overwrite: %w", err)
			}
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return r.spec.Save(out)
}

// resumeFreeKeys may differ between a checkpoint's experiment and the
// resuming one without run.allow_changes: they change how a run reports,
// where it stops, or how fast it computes, not what it computes.
var resumeFreeKeys = []string{
	"run.resume", "run.overwrite", "run.allow_changes", "run.output_dir", "run.log_every",
	"run.checkpoint_every", "run.checkpoints_keep", "run.backend", "run.gradient_checkpointing",
	"optim.max_train_steps", "data.workers", "data.vae_encode_batch_size",
	"data.cache", // a cache reproduces the images' batches (its settings are checked when it opens)
	// The vae task's validation and the images its export measures.
	"vae.validation_sources", "vae.validation_images", "vae.grid_images", "vae.scaling_images",
}

// checkResumable refuses to resume from dir with an experiment that trains
// differently from the one the checkpoint was made by, listing every
// changed key with both values.
func (r *run) checkResumable(dir string, saved spec.Spec, from string) error {
	var refused []string
	for _, c := range spec.Changes(saved, r.spec) {
		if slices.Contains(resumeFreeKeys, c.Key) || strings.HasPrefix(c.Key, "run.validation_") ||
			c.Key == "run.eval_every" || strings.HasPrefix(c.Key, "eval.") ||
			slices.Contains(r.spec.Run.AllowChanges, c.Key) {
			continue
		}
		refused = append(refused, fmt.Sprintf("  %s: %s in the checkpoint, %s now", c.Key, c.Old, c.New))
	}
	if len(refused) == 0 {
		return nil
	}
	return fmt.Errorf("cannot resume from %s: the experiment differs from the one it was made by (%s):\n%s\nresume with the same settings, list the keys in run.allow_changes to change them anyway, or start a new run in another run.output_dir",
		dir, from, strings.Join(refused, "\n"))
}

// checkpointSpec reads the experiment a checkpoint was made by: its own
// config.toml, or for checkpoints written before they carried one, the
// run's.
func checkpointSpec(dir string) (spec.Spec, string, error) {
	path := filepath.Join(dir, spec.ConfigFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		path = filepath.Join(filepath.Dir(filepath.Dir(dir)), spec.ConfigFile)
	}
	s, err := spec.Load(path, nil)
	if err != nil {
		return s, path, fmt.Errorf("checkpoint %s: its experiment: %w", dir, err)
	}
	return s, path, nil
}

// restoreNewest restores the newest checkpoint of candidates that is
// intact. With run.resume = "latest" a damaged one (unreadable state.json,
// a truncated or missing weight file) is skipped with a note saying why;
// with an explicit path it is an error. A checkpoint of a different
// experiment is always an error.
func (r *run) restoreNewest(candidates []string) (State, string, error) {
	var skipped []string
	for _, dir := range candidates {
		saved, from, err := checkpointSpec(dir)
		if err == nil {
			if err := r.checkResumable(dir, saved, from); err != nil {
				return State{}, "", err
			}
			var st State
			if st, err = r.restore(dir); err == nil {
				return st, dir, nil
			}
		}
		if r.spec.Run.Resume != "latest" {
			return State{}, "", err
		}
		fmt.Fprintf(r.log, "skipping checkpoint %s: %v\n", dir, err)
		skipped = append(skipped, fmt.Sprintf("%s: %v", filepath.Base(dir), err))
	}
	return State{}, "", fmt.Errorf("run.resume = latest: no intact checkpoint in %s:\n  %s",
		filepath.Join(r.spec.Run.OutputDir, checkpointsDir), strings.Join(skipped, "\n  "))
}

// validationGrid is the PNG grid validate writes for a model at a step.
func validationGrid(out, model string, step int) string {
	return filepath.Join(out, "validation", fmt.Sprintf("%s-step-%08d.png", model, step))
}

// owedValidation runs the validation of the restored step when its grid is
// missing: the run was killed between writing checkpoint N and validation N.
func (r *run) owedValidation(step int) error {
	every := r.spec.Run.ValidationEvery
	if every <= 0 || step == 0 || step%every != 0 {
		return nil
	}
	if _, err := os.Stat(r.task.validationGrid(step)); err == nil {
		return nil
	}
	fmt.Fprintf(r.log, "running the validation of step %d, which the interrupted run did not finish\n", step)
	return r.task.validate(step)
}

// checkFinite refuses weights holding a NaN or an infinity, naming the
// group and the first bad tensor, so that no checkpoint or export ever holds
// them. The loop already stops on the step's in-graph WeightsFinite flag;
// this host scan at checkpoint and export time (a small cost next to
// writing the file) also covers weights that did not come from a step of
// this process (an export from a checkpoint).
func checkFinite(groups map[string]*nn.Weights) error {
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		w := groups[g]
		if w == nil {
			continue
		}
		for _, name := range w.Names() {
			t, _ := w.Get(name)
			bad := -1
			err := tensors.ConstFlatData(t, func(flat []float32) {
				for i, v := range flat {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						bad = i
						return
					}
				}
			})
			if err != nil {
				return fmt.Errorf("%s %s: %w", g, name, err)
			}
			if bad >= 0 {
				return fmt.Errorf("%s weights are not finite (%s[%d] is NaN or infinite)", g, name, bad)
			}
		}
	}
	return nil
}
