package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/golcm/golcm/datasets"
	"github.com/golcm/golcm/experiments/spec"
	"github.com/golcm/golcm/models/nn"
	"github.com/golcm/golcm/train"
)

// checkpointsDir is where a run's checkpoints live, one folder each.
const checkpointsDir = "checkpoints"

// State is the non-tensor part of a checkpoint: enough to continue the run
// with the same next batch and the same random draws.
type State struct {
	Step int               `json:"step"`      // optimizer steps completed
	RNG  []byte            `json:"rng"`       // the run's random generator (PCG state)
	Data datasets.Position `json:"data"`      // where the data stream stands
	Loss float32           `json:"last_loss"` // loss of the last step, for humans
	// Scaler is fp16's loss-scale state (absent without loss scaling).
	Scaler *train.ScalerState `json:"loss_scale,omitempty"`
}

// scalerState is what a checkpoint keeps of t's loss scaling, nil if none.
func scalerState(t *train.Trainer) *train.ScalerState {
	if t.Scaler.Scale == 0 {
		return nil
	}
	st := t.Scaler
	return &st
}

func checkpointName(step int) string { return fmt.Sprintf("step-%08d", step) }

// writeWeights writes one weight group of a checkpoint (a variable so that
// tests can make a save fail).
var writeWeights = nn.WriteWeights

// saveCheckpoint writes weight groups, state and the experiment into
// <out>/checkpoints/step-N. Everything goes into a temporary folder that is
// renamed at the end, so a crash never leaves a half checkpoint behind; a
// save that fails removes its temporary folder. Weights that are not finite
// are never written: the error names the last good checkpoint instead.
func saveCheckpoint(outDir string, step int, groups map[string]*nn.Weights, st State, experiment spec.Spec) (path string, err error) {
	root := filepath.Join(outDir, checkpointsDir)
	final := filepath.Join(root, checkpointName(step))
	if err := checkFinite(groups); err != nil {
		return "", fmt.Errorf("not saving checkpoint %s: %w after step %d; the last good checkpoint is %s", final, err, step, lastCheckpointIn(outDir))
	}
	tmp := filepath.Join(root, ".tmp-"+checkpointName(step))
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	for name, w := range groups {
		if w == nil {
			continue
		}
		if err := writeWeights(filepath.Join(tmp, name+".safetensors"), w, "F32"); err != nil {
			return "", fmt.Errorf("checkpoint %s: %w", final, err)
		}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "state.json"), data, 0o644); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := experiment.Save(tmp); err != nil {
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := os.RemoveAll(final); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}

// loadCheckpoint reads the named weight groups and the state of a checkpoint
// folder. A group missing from the folder is an error.
func loadCheckpoint(dir string, names []string) (map[string]*nn.Weights, State, error) {
	var st State
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, st, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, st, fmt.Errorf("checkpoint %s/state.json: %w", dir, err)
	}
	groups := map[string]*nn.Weights{}
	for _, name := range names {
		w, err := nn.ReadWeights(filepath.Join(dir, name+".safetensors"))
		if err != nil {
			return nil, st, fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		groups[name] = w
	}
	return groups, st, nil
}

// listCheckpoints returns the complete checkpoint folders of a run, oldest
// first.
func listCheckpoints(outDir string) ([]string, error) {
	root := filepath.Join(outDir, checkpointsDir)
	entries, err := os.ReadDir(root)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "step-") {
			out = append(out, filepath.Join(root, e.Name()))
		}
	}
	sort.Strings(out) // zero-padded step numbers sort in order
	return out, nil
}

// isCheckpoint reports whether dir is a checkpoint folder (holds state.json).
func isCheckpoint(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "state.json"))
	return err == nil && !st.IsDir()
}

// pruneCheckpoints keeps the newest keep checkpoints (0 keeps all).
func pruneCheckpoints(outDir string, keep int) error {
	if keep <= 0 {
		return nil
	}
	all, err := listCheckpoints(outDir)
	if err != nil {
		return err
	}
	for len(all) > keep {
		if err := os.RemoveAll(all[0]); err != nil {
			return err
		}
		all = all[1:]
	}
	return nil
}

// lastCheckpointIn names the newest checkpoint under outDir, or says there
// is none.
func lastCheckpointIn(outDir string) string {
	if all, _ := listCheckpoints(outDir); len(all) > 0 {
		return all[len(all)-1]
	}
	return "none was written"
}
