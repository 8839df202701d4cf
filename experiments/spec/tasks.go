package spec

import (
	"slices"
	"strings"
)

// Tasks are the values of the top-level task key.
var Tasks = []string{"lcd", "diffusion", "vae"}

// taskSections are the sections only some tasks read.
var taskSections = map[string][]string{
	"distill":   {"lcd"},
	"lora":      {"lcd"},
	"diffusion": {"diffusion"},
	"vae":       {"vae"},
	"eval":      {"lcd"},
}

// taskKeys are the keys of shared sections only some tasks read: the validation grids of the vae
// task are reconstructions, not samples of prompts; only distillation makes a tiny teacher.
var taskKeys = map[string][]string{
	"model.init_tiny":                {"lcd"},
	"data.fix_crop_and_size":         {"lcd", "diffusion"},
	"data.cache":                     {"lcd", "diffusion"},
	"run.validation_prompts":         {"lcd", "diffusion"},
	"run.validation_inference_steps": {"lcd", "diffusion"},
	"run.validation_guidance":        {"lcd", "diffusion"},
	"run.validation_seed":            {"lcd", "diffusion"},
	"run.validation_width":           {"lcd", "diffusion"},
	"run.validation_height":          {"lcd", "diffusion"},
	// Mixed precision is the distillation step's: the diffusion and vae tasks train in float32.
	"run.mixed_precision":            {"lcd"},
	"run.loss_scale_init":            {"lcd"},
	"run.loss_scale_growth_interval": {"lcd"},
	"run.eval_every":                 {"lcd"},
}

// KeyOfTask reports whether task reads key; an experiment of that task may not set the others.
// An unknown task reads every key (Validate reports the task itself).
func KeyOfTask(key, task string) bool {
	if !slices.Contains(Tasks, task) {
		return true
	}
	if tasks, ok := taskKeys[key]; ok {
		return slices.Contains(tasks, task)
	}
	sec, _, _ := strings.Cut(key, ".")
	if tasks, ok := taskSections[sec]; ok && strings.Contains(key, ".") {
		return slices.Contains(tasks, task)
	}
	return true
}

// tasksOf lists the tasks that read key, for error messages.
func tasksOf(key string) []string {
	var out []string
	for _, t := range Tasks {
		if KeyOfTask(key, t) {
			out = append(out, t)
		}
	}
	return out
}

// foreignKeyMessage says why key cannot be set in an experiment of task.
func foreignKeyMessage(key, task string) string {
	quoted := make([]string, 0, 3)
	for _, t := range tasksOf(key) {
		quoted = append(quoted, quote(t))
	}
	return key + " is a key of task " + strings.Join(quoted, " or ") + "; this experiment has task = " + quote(task) +
		" (remove the key, or set task)"
}
