package evaluation

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/golcm/golcm/datasets"
)

// Config is what to evaluate and how: the [eval] section of a TOML file,
// or the eval command's flags, over DefaultConfig.
type Config struct {
	// Teacher is the teacher's diffusers pipeline folder (required): DDIM
	// with classifier-free guidance TeacherGuidance (default 7.5, as
	// StableDiffusionPipeline) at TeacherSteps (default [1, 2, 4, 8]) and
	// ReferenceSteps.
	Teacher         string  `toml:"teacher" json:"teacher"`
	TeacherGuidance float64 `toml:"teacher_guidance" json:"teacher_guidance"`
	TeacherSteps    []int   `toml:"teacher_steps" json:"teacher_steps"`
	// ReferenceSteps (default 50) is the teacher's step count every other
	// row is compared with, sample by sample.
	ReferenceSteps int `toml:"reference_steps" json:"reference_steps"`

	// Student is a full LCM's pipeline folder (what a full distillation
	// exports); "" leaves it out. StudentGuidance (default 8.5, as
	// LatentConsistencyModelPipeline) is the w+1 it embeds.
	Student         string  `toml:"student" json:"student,omitempty"`
	StudentGuidance float64 `toml:"student_guidance" json:"student_guidance"`
	// LoRA is an LCM-LoRA file applied to LoRABase's UNet (default: the
	// teacher); "" leaves it out. LoRAGuidance (default 1) > 1 runs CFG, as
	// diffusers' LCM-LoRA pipelines do.
	LoRA         string  `toml:"lora" json:"lora,omitempty"`
	LoRABase     string  `toml:"lora_base" json:"lora_base,omitempty"`
	LoRAGuidance float64 `toml:"lora_guidance" json:"lora_guidance"`
	// StudentSteps are the LCM step counts of both students (default
	// [1, 2, 4, 8]).
	StudentSteps []int `toml:"student_steps" json:"student_steps"`
	// Undistilled adds the "undistilled" rows: the teacher's own UNet
	// sampled with the LCM scheduler at StudentSteps and LoRAGuidance,
	// which is what both students start from (a LoRA at step 0; the full
	// student less its new w embedding), so each distillation can be
	// measured against no distillation at all.
	Undistilled bool `toml:"undistilled" json:"undistilled,omitempty"`

	// Prompts, else PromptsFile (one prompt a line, blank lines skipped),
	// else with a classifier one prompt per class from PromptTemplate
	// ("{label}": the class name, "{a}": its article; default
	// "a photo of {a} {label}", the captions golcm's data convert gives an
	// IDX data set). SamplesPerPrompt defaults to 1.
	Prompts          []string `toml:"prompts" json:"prompts"`
	PromptsFile      string   `toml:"prompts_file" json:"prompts_file,omitempty"`
	PromptTemplate   string   `toml:"prompt_template" json:"prompt_template,omitempty"`
	SamplesPerPrompt int      `toml:"samples_per_prompt" json:"samples_per_prompt"`
	// Seed (default 0) makes the initial noise (the same for every row) and
	// the LCM steps' noise; BatchSize (default 8) images are sampled a call.
	Seed      uint64 `toml:"seed" json:"seed"`
	BatchSize int    `toml:"batch_size" json:"batch_size"`
	// Width and Height of the samples (0: the teacher's default size).
	Width  int `toml:"width" json:"width"`
	Height int `toml:"height" json:"height"`

	// Classifier is a models/classifier folder; with it the rows get the
	// Fréchet distance to RealImages and the prompt accuracy.
	Classifier string `toml:"classifier" json:"classifier,omitempty"`
	// RealImages and RealLabels are IDX files of the real set (the labels
	// give the classifier's accuracy on it; default: RealImages with
	// images-idx3 replaced by labels-idx1). RealLimit
	// > 0 uses the first RealLimit images.
	RealImages string `toml:"real_images" json:"real_images,omitempty"`
	RealLabels string `toml:"real_labels" json:"real_labels,omitempty"`
	RealLimit  int    `toml:"real_limit" json:"real_limit"`

	// OutputDir gets eval.json, grid.png and samples/ (required).
	OutputDir string `toml:"output_dir" json:"output_dir"`
}

// DefaultConfig holds every default: the teacher at 1, 2, 4, 8 DDIM steps
// with guidance 7.5 (diffusers' StableDiffusionPipeline) against its
// 50-step samples, the students at 1, 2, 4, 8 LCM steps with the full
// LCM's guidance 8.5 (LatentConsistencyModelPipeline) and the LoRA's 1.
func DefaultConfig() Config {
	return Config{
		TeacherGuidance: 7.5, TeacherSteps: []int{1, 2, 4, 8}, ReferenceSteps: 50,
		StudentGuidance: 8.5, LoRAGuidance: 1, StudentSteps: []int{1, 2, 4, 8},
		PromptTemplate: datasets.DefaultCaptionTemplate, SamplesPerPrompt: 1, BatchSize: 8,
	}
}

// ReadConfig reads the [eval] section of a TOML file over DefaultConfig;
// an unknown key is an error naming the file and the key.
func ReadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("eval config: %w", err)
	}
	doc := struct {
		Eval Config `toml:"eval"`
	}{Eval: DefaultConfig()}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			keys := make([]string, len(strict.Errors))
			for i, e := range strict.Errors {
				keys[i] = strings.Join(e.Key(), ".")
			}
			return Config{}, fmt.Errorf("eval config %s: unknown keys %s", path, strings.Join(keys, ", "))
		}
		return Config{}, fmt.Errorf("eval config %s: %w", path, err)
	}
	return doc.Eval, nil
}

// Validate checks the settings, naming the [eval] key and value at fault.
func (c *Config) Validate() error {
	bad := func(key string, value any, want string) error {
		return fmt.Errorf("eval.%s = %v: %s", key, value, want)
	}
	switch {
	case c.Teacher == "":
		return bad("teacher", `""`, "the teacher pipeline folder is required")
	case c.OutputDir == "":
		return bad("output_dir", `""`, "an output folder is required")
	case c.ReferenceSteps < 1:
		return bad("reference_steps", c.ReferenceSteps, "want at least 1")
	case c.SamplesPerPrompt < 1:
		return bad("samples_per_prompt", c.SamplesPerPrompt, "want at least 1")
	case c.BatchSize < 1:
		return bad("batch_size", c.BatchSize, "want at least 1")
	case c.Width < 0 || c.Height < 0:
		return bad("width", fmt.Sprintf("%d (height %d)", c.Width, c.Height), "sizes must not be negative")
	case c.RealLimit < 0:
		return bad("real_limit", c.RealLimit, "want 0 (all) or more")
	case c.RealImages != "" && c.Classifier == "":
		return bad("real_images", c.RealImages, "the Fréchet distance needs eval.classifier (its features)")
	case c.LoRABase != "" && c.LoRA == "":
		return bad("lora_base", c.LoRABase, "set eval.lora too (the LoRA to apply to it)")
	}
	for key, steps := range map[string][]int{"teacher_steps": c.TeacherSteps, "student_steps": c.StudentSteps} {
		for _, n := range steps {
			if n < 1 {
				return bad(key, steps, "every step count must be at least 1")
			}
		}
	}
	return nil
}

// ResolvePrompts is the prompt list: Prompts, PromptsFile, or one caption
// per class label when labels are given.
func (c *Config) ResolvePrompts(labels []string) ([]string, error) {
	if len(c.Prompts) > 0 {
		return c.Prompts, nil
	}
	if c.PromptsFile != "" {
		f, err := os.Open(c.PromptsFile)
		if err != nil {
			return nil, fmt.Errorf("eval.prompts_file: %w", err)
		}
		defer f.Close()
		var out []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if line := strings.TrimSpace(sc.Text()); line != "" {
				out = append(out, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("eval.prompts_file %s: %w", c.PromptsFile, err)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("eval.prompts_file %s: no prompts", c.PromptsFile)
		}
		return out, nil
	}
	if len(labels) == 0 || c.PromptTemplate == "" {
		return nil, fmt.Errorf("eval: no prompts (set eval.prompts or eval.prompts_file, or a classifier to caption its classes)")
	}
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = datasets.FillCaption(c.PromptTemplate, l)
	}
	return out, nil
}

// PromptClass is the class a prompt names: the longest label it contains
// (case-insensitive), or -1 when it names none.
func PromptClass(prompt string, labels []string) int {
	p := strings.ToLower(prompt)
	best := -1
	for i, l := range labels {
		if l != "" && strings.Contains(p, strings.ToLower(l)) && (best < 0 || len(l) > len(labels[best])) {
			best = i
		}
	}
	return best
}
