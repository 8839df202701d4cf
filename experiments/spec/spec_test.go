package spec

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// shipped lists the experiment files next to this package.
func shipped(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "*.toml"))
	more, _ := filepath.Glob(filepath.Join("..", "*", "*.toml")) // recipe sets: experiments/fashion
	files = append(files, more...)
	if err != nil || len(files) < 7 {
		t.Fatalf("shipped experiments: %v %v", files, err)
	}
	return files
}

// parseErr parses and returns the error text, failing the test when parsing succeeds.
func parseErr(t *testing.T, doc string, sets ...string) string {
	t.Helper()
	_, err := Parse([]byte(doc), "x.toml", sets)
	if err == nil {
		t.Fatalf("Parse(%q, %q) succeeded, want an error", doc, sets)
	}
	return err.Error()
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("error %q\ndoes not contain %q", got, w)
		}
	}
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestShippedExperimentsLoadAndValidate(t *testing.T) {
	for _, path := range shipped(t) {
		if _, err := Load(path, nil); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	sdxl, err := Load(filepath.Join("..", "sdxl_lora.toml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sdxl.Distill.WMin != 3 || sdxl.Data.Resolution != 1024 || sdxl.Distill.Mode != "lora" ||
		sdxl.Model.VAE != "madebyollin/sdxl-vae-fp16-fix" || sdxl.Optim.LR != 1e-4 {
		t.Errorf("sdxl_lora.toml resolved to %+v", sdxl)
	}
	tiny, err := Load(filepath.Join("..", "tiny.toml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !tiny.Model.InitTiny || tiny.Data.Generate != 32 || tiny.Data.Resolution != 64 || tiny.Optim.MaxTrainSteps != 30 ||
		!reflect.DeepEqual(tiny.Run.ValidationInferenceSteps, []int{1, 2, 4}) || len(tiny.Run.ValidationPrompts) != 2 {
		t.Errorf("tiny.toml resolved to %+v", tiny)
	}
}

// The shipped files state what differs from Default (the teacher is always named, for the reader).
func TestShippedExperimentsStateOnlyDifferences(t *testing.T) {
	def := Default()
	for _, path := range shipped(t) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(data, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := toml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		for sec, v := range doc {
			kvs, ok := v.(map[string]any)
			if !ok {
				kvs = map[string]any{"": v} // a top-level key
			}
			for name := range kvs {
				key := sec + "." + name
				if name == "" {
					key = sec
				}
				if key == "model.path" {
					continue
				}
				f := fieldByKey[key]
				if reflect.DeepEqual(f.value(&s).Interface(), f.value(&def).Interface()) {
					t.Errorf("%s sets %s to its default", path, key)
				}
			}
		}
	}
}

func TestUnknownKeyNamesFileLineAndClosestKey(t *testing.T) {
	doc := "[distill]\nw_min = 3.0\n\nw_mni = 4.0\n"
	_, err := Parse([]byte(doc), "sd15_lora.toml", nil)
	if err == nil || err.Error() != `sd15_lora.toml:4: unknown key "distill.w_mni" (did you mean "distill.w_min"?)` {
		t.Errorf("got %v", err)
	}
	wantContains(t, parseErr(t, "[distil]\nw_min = 3\n"), `x.toml:1: unknown section [distil] (did you mean [distill]?)`)
	wantContains(t, parseErr(t, "[model]\nw_min = 3\n"), `x.toml:2: unknown key "model.w_min" (did you mean "distill.w_min"?)`)
	wantContains(t, parseErr(t, "seed = 3\n"), `x.toml:1: unknown key "seed" (did you mean "run.seed"?)`)
	wantContains(t, parseErr(t, "[optim]\nlearning_rate = 1e-6\n"), `unknown key "optim.learning_rate" (did you mean "optim.lr"?)`)
	wantContains(t, parseErr(t, "[optim]\nzzzzzzzzzz = 1\n"), `keys in [optim]: beta1, beta2,`)
	wantContains(t, parseErr(t, "distill = 3\n"), `x.toml:1: distill is a section, not a key`)
	wantContains(t, parseErr(t, "[[run]]\nseed = 1\n"), `x.toml:1: [[run]]: arrays of tables are not part of the spec`)
	// Every error is reported, not just the first.
	got := parseErr(t, "[run]\nseeed = 1\n[optim]\nlrr = 1\n")
	wantContains(t, got, `x.toml:2: unknown key "run.seeed"`, `x.toml:4: unknown key "optim.lrr"`)
}

func TestWrongTypeNamesKeyAndValue(t *testing.T) {
	for doc, want := range map[string]string{
		"[distill]\nw_min = \"five\"\n":                     `x.toml:2: distill.w_min = "five": want a number`,
		"[optim]\nmax_train_steps = 10.5\n":                 `x.toml:2: optim.max_train_steps = 10.5: want an integer`,
		"[run]\ngradient_checkpointing = 1\n":               `x.toml:2: run.gradient_checkpointing = 1: want true or false`,
		"[data]\nsources = \"a.tar\"\n":                     `x.toml:2: data.sources = "a.tar": want an array of strings`,
		"[lora]\ntargets = [\"to_q\", 3]\n":                 `x.toml:2: lora.targets = ["to_q", 3]: want an array of strings`,
		"[model]\npath = 3\n":                               `x.toml:2: model.path = 3: want a string`,
		"[distill]\nw_max = inf\n":                          `x.toml:2: distill.w_max = inf: want a finite number`,
		"run.validation_inference_steps = [1.5]":            `x.toml:1: run.validation_inference_steps = [1.5]: want an array of integers`,
		"[optim]\nmax_train_steps = 99999999999999999999\n": `x.toml:2: optim.max_train_steps: decimal number is too large`,
	} {
		wantContains(t, parseErr(t, doc), want)
	}
}

func TestWMinAboveWMaxIsAnError(t *testing.T) {
	got := parseErr(t, "[distill]\nw_min = 16\n")
	if got != "x.toml:2: distill.w_min = 16 is greater than distill.w_max = 15" {
		t.Errorf("got %q", got)
	}
	got = parseErr(t, "", "distill.w_max=4")
	if got != "-set distill.w_max=4: distill.w_min = 5 is greater than distill.w_max = 4" {
		t.Errorf("got %q", got)
	}
}

func TestNegativeStepsAreErrors(t *testing.T) {
	got := parseErr(t, "[optim]\nmax_train_steps = -5\nwarmup_steps = -1\n[run]\ncheckpoint_every = -1\nlog_every = 0\n")
	wantContains(t, got,
		"x.toml:2: optim.max_train_steps = -5 must be at least 1",
		"x.toml:3: optim.warmup_steps = -1 must be at least 0",
		"x.toml:5: run.checkpoint_every = -1 must be at least 0",
		"x.toml:6: run.log_every = 0 must be at least 1")
}

func TestResolutionMustBeAMultipleOfTheVAEFactor(t *testing.T) {
	wantContains(t, parseErr(t, "[data]\nresolution = 500\n"),
		"x.toml:2: data.resolution = 500 is not a multiple of 8 (the VAE's downsampling factor)")
	wantContains(t, parseErr(t, "[data]\nresolution = 0\n"), "data.resolution = 0 must be a positive multiple of 8")
	wantContains(t, parseErr(t, "", "run.validation_width=100"), "run.validation_width = 100 is not a multiple of 8")
}

func TestImpossibleValuesAreErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"[distill]\nnum_ddim_timesteps = 30\n":                      "distill.num_ddim_timesteps = 30 does not divide 1000",
		"[distill]\nnum_ddim_timesteps = 0\n":                       "distill.num_ddim_timesteps = 0 must be between 1 and 1000",
		"[distill]\nmode = \"half\"\n":                              `distill.mode = "half" must be one of "full", "lora"`,
		"[distill]\nloss = \"l1\"\n":                                `distill.loss = "l1" must be one of "l2", "huber"`,
		"[distill]\nema_decay = 1.0\n":                              "distill.ema_decay = 1 must be in [0, 1)",
		"[distill]\nhuber_c = 0\n":                                  "distill.huber_c = 0 must be greater than 0",
		"[lora]\nrank = 0\n":                                        "lora.rank = 0 must be at least 1",
		"[lora]\ntargets = []\n":                                    "lora.targets = [] must not be empty",
		"[lora]\ntargets = [\"a\", \"a\"]\n":                        `lora.targets = ["a", "a"]: "a" is listed twice`,
		"[data]\ngenerate = 4\nsources = [\"a.tar\"]\n":             `data.generate = 4 and data.sources = ["a.tar"] are both set`,
		"[data]\nmax_watermark = 1.5\n":                             "data.max_watermark = 1.5 must be in [0, 1]",
		"[optim]\nlr = 0\n":                                         "optim.lr = 0 must be greater than 0",
		"[optim]\nschedule = \"linear\"\nmax_train_steps = 100\n":   `optim.warmup_steps = 500 is greater than optim.max_train_steps = 100`,
		"[run]\nvalidation_inference_steps = [4, 60]\n":             "60 steps is outside 1..50",
		"[run]\nvalidation_prompts = []\n":                          "run.validation_prompts = [] is empty but run.validation_every = 200 asks for validation",
		"[run]\nmixed_precision = \"fp8\"\n":                        `x.toml:2: run.mixed_precision = "fp8" must be one of "no", "bf16", "fp16"`,
		"task = \"vae\"\n[run]\nmixed_precision = \"bf16\"\n":       `run.mixed_precision is a key of task "lcd"`,
		"[run]\nloss_scale_init = 0\n":                              "run.loss_scale_init = 0 must be greater than 0",
		"[run]\nloss_scale_growth_interval = 0\n":                   "run.loss_scale_growth_interval = 0 must be at least 1",
		"[run]\nbackend = \"cuda\"\n":                               `run.backend = "cuda" must be "", "go" or "xla"`,
		"[model]\npath = \"\"\n":                                    `model.path = "" must not be empty`,
		"[lora]\nformats = [\"comfy\"]\n":                           `lora.formats = ["comfy"]: "comfy" is not a LoRA file format (want diffusers, kohya, diffusers-old)`,
		"[run]\nallow_changes = [\"optim.learning_rate\"]\n":        `run.allow_changes = ["optim.learning_rate"]: "optim.learning_rate" is not a key`,
		"[run]\neval_every = 10\n[eval]\nstudent_steps = [4, 60]\n": "eval.student_steps = [4, 60]: 60 steps is outside 1..50 (distill.num_ddim_timesteps)",
		"[run]\neval_every = 10\n[eval]\nstudent_steps = []\n":      "eval.student_steps = [] is empty but run.eval_every = 10 asks for evaluation",
		"[run]\neval_every = 10\nvalidation_prompts = []\n":         "run.eval_every = 10 asks for evaluation but there are no prompts",
		"[eval]\nreal_images = \"t10k.gz\"\n":                       `eval.real_images = "t10k.gz": the Fréchet distance needs eval.classifier`,
		"[eval]\nreference_steps = 0\n":                             "eval.reference_steps = 0 must be at least 1",
	} {
		wantContains(t, parseErr(t, doc), want)
	}
	if _, err := Parse([]byte("[run]\nvalidation_every = 0\nvalidation_prompts = []\nbackend = \"xla:cuda\"\n"), "x.toml", nil); err != nil {
		t.Errorf("validation off without prompts, xla:cuda backend: %v", err)
	}
}

func TestValidateNamesNonFiniteValuesOnce(t *testing.T) {
	s := Default()
	s.Distill.WMax = math.NaN()
	err := s.Validate()
	if err == nil || err.Error() != "distill.w_max = nan must be a finite number" {
		t.Errorf("got %v", err)
	}
}

func TestDuplicateKeyIsAnError(t *testing.T) {
	wantContains(t, parseErr(t, "[distill]\nw_min = 1\nw_min = 2\n"), "x.toml:3:")
	wantContains(t, parseErr(t, "[run]\nseed = 1\n[run]\nlog_every = 2\n"), "x.toml:3:")
	wantContains(t, parseErr(t, "[run\n"), "x.toml:1:")
}

func TestDottedKeysAndInlineTablesAreKeys(t *testing.T) {
	s, err := Parse([]byte("data.resolution = 256\ndistill = { w_min = 3, loss = \"huber\" }\n"), "x.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Data.Resolution != 256 || s.Distill.WMin != 3 || s.Distill.Loss != "huber" {
		t.Errorf("got %+v %+v", s.Data, s.Distill)
	}
	wantContains(t, parseErr(t, "distill = { w_mni = 3 }\n"), `x.toml:1: unknown key "distill.w_mni" (did you mean "distill.w_min"?)`)
}

func TestSetOverridesFileAndDefaults(t *testing.T) {
	doc := "[distill]\nw_min = 3\n"
	s, err := Parse([]byte(doc), "x.toml", []string{
		"distill.w_min=4",
		"distill.w_min=4.5", // the last -set of a key wins
		"optim.lr=1e-3",
		"run.resume=latest", // a bare word for a string key
		`run.output_dir="runs/a b"`,
		"model.revision=2024", // a string key takes any text as is
		"run.validation_inference_steps=[1, 2]",
		`data.sources=["a/{000..009}.tar"]`,
		"run.gradient_checkpointing=true",
		"distill.mode=lora",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Distill.WMin != 4.5 || s.Optim.LR != 1e-3 || s.Run.Resume != "latest" || s.Run.OutputDir != "runs/a b" ||
		s.Model.Revision != "2024" || !reflect.DeepEqual(s.Run.ValidationInferenceSteps, []int{1, 2}) ||
		!reflect.DeepEqual(s.Data.Sources, []string{"a/{000..009}.tar"}) || !s.Run.GradientCheckpointing ||
		s.Distill.Mode != "lora" {
		t.Errorf("got %+v", s)
	}
	s, err = Parse(nil, "", []string{"run.resume="})
	if err != nil || s.Run.Resume != "" {
		t.Errorf("-set run.resume= (empty): %v %q", err, s.Run.Resume)
	}
}

func TestBadSetIsAnError(t *testing.T) {
	for set, want := range map[string]string{
		"distill.w_mni=3":                `-set distill.w_mni=3: unknown key "distill.w_mni" (did you mean "distill.w_min"?)`,
		"w_min=3":                        `-set w_min=3: unknown key "w_min" (did you mean "distill.w_min"?)`,
		"learning_rate=1e-6":             `-set learning_rate=1e-6: unknown key "learning_rate" (did you mean "optim.lr"?)`,
		"distill.w_min=abc":              `-set distill.w_min=abc: want a number`,
		"distill.w_min=":                 `-set distill.w_min=: want a number`,
		"distill.w_min=3 4":              `-set distill.w_min=3 4: want a number`,
		"optim.max_train_steps=1.5":      `-set optim.max_train_steps=1.5: want an integer`,
		"run.gradient_checkpointing=yes": `-set run.gradient_checkpointing=yes: want true or false`,
		"data.sources=a.tar":             `-set data.sources=a.tar: want an array of strings`,
		"distill.w_min":                  `-set distill.w_min: want section.key=value`,
		"distill=3":                      `-set distill=3: distill is a section: set its keys one by one, e.g. -set distill.mode="full"`,
		"distill.w_min=20":               `-set distill.w_min=20: distill.w_min = 20 is greater than distill.w_max = 15`,
	} {
		_, err := Parse(nil, "", []string{set})
		if err == nil || err.Error() != want {
			t.Errorf("-set %s: got %v\nwant %s", set, err, want)
		}
	}
}

// roundTrip checks that TOML() reads back through Parse to an equal Spec.
func roundTrip(t *testing.T, name string, s Spec) {
	t.Helper()
	data, err := s.TOML()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	back, err := Parse(data, name, nil)
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, data)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("%s: round trip changed the spec:\n%+v\n%+v\n%s", name, s, back, data)
	}
}

func TestTOMLRoundTrips(t *testing.T) {
	roundTrip(t, "default", Default())
	for _, path := range shipped(t) {
		s, err := Load(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, path, s)
	}
	odd := Default()
	odd.Run.ValidationPrompts = []string{"a \"quoted\" \\ back\tslash\nnew line \x01 ünïcode 猫", "#not a comment"}
	odd.Optim.LR = 1.0000000000000002e-4
	odd.Optim.Eps = 1e-300
	odd.Run.Seed = -1 << 63
	odd.Data.Sources = []string{"pipe:curl -L -s 'https://x/{00000..01210}.tar?download=true'"}
	odd.Run.ValidationInferenceSteps = nil
	odd.Run.ValidationEvery = 0
	roundTrip(t, "odd", odd)
}

func TestTOMLRejectsInvalidUTF8(t *testing.T) {
	s := Default()
	s.Run.OutputDir = "runs/\xff"
	if _, err := s.TOML(); err == nil || !strings.Contains(err.Error(), "run.output_dir") {
		t.Errorf("got %v", err)
	}
}

func TestSaveWritesTheResolvedSpec(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	s := Default()
	s.Distill.Loss = "huber"
	if err := s.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(filepath.Join(dir, ConfigFile), nil)
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("reloaded %+v, %v", back, err)
	}
	if err := s.Save(dir); err != nil { // overwriting is fine
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Save left %v in %s", entries, dir)
	}
}

func TestFindFileLooksInExperiments(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll(filepath.Join("experiments", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"here.toml", "experiments/tiny.toml", "experiments/here.toml"} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{
		"here.toml":             "here.toml",
		"tiny.toml":             filepath.Join("experiments", "tiny.toml"),
		"experiments/tiny.toml": "experiments/tiny.toml",
	} {
		if got, err := FindFile(name); err != nil || got != want {
			t.Errorf("FindFile(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	_, err := FindFile("nope.toml")
	if err == nil || err.Error() != `experiment file "nope.toml" not found (tried nope.toml, experiments/nope.toml)` {
		t.Errorf("got %v", err)
	}
	if _, err := FindFile("sub"); err == nil { // a folder is not an experiment
		t.Error("FindFile found a folder")
	}
	if _, err := FindFile("experiments/sub"); err == nil || !strings.Contains(err.Error(), `"experiments/sub" is a folder`) {
		t.Errorf("FindFile of a folder: %v, want it to say it is a folder", err)
	}
}

func TestLoadWithoutFileIsDefaultsPlusSets(t *testing.T) {
	s, err := Load("", []string{"data.resolution=256"})
	want := Default()
	want.Data.Resolution = 256
	if err != nil || !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, %v", s, err)
	}
	if _, err := Load("no/such.toml", nil); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestDiffusersFlagsPointAtValidKeys(t *testing.T) {
	for flag, key := range diffusersFlags {
		if _, ok := fieldByKey[key]; !ok {
			t.Errorf("diffusersFlags[%q] = %q is not a key", flag, key)
		}
	}
}

func ExampleParse() {
	doc := []byte(`
[distill]
mode = "lora"

[optim]
lr = 1e-6
`)
	s, err := Parse(doc, "notebook.toml", []string{"data.resolution=256", "run.output_dir=runs/nb"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Distill.Mode, s.LoRA.Rank, s.Optim.LR, s.Data.Resolution, s.Run.OutputDir)

	_, err = Parse(doc, "notebook.toml", []string{"distill.w_min=20", "lora.rnak=8"})
	fmt.Println(err)
	// Output:
	// lora 64 1e-06 256 runs/nb
	// -set lora.rnak=8: unknown key "lora.rnak" (did you mean "lora.rank"?)
}

// A key of another task's section is an error naming the file, the line and the key, even at its
// default value, in a file and in -set; in a spec built in code, a changed value is one.
func TestKeysOfAnotherTaskAreRefused(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"task = \"diffusion\"\n[distill]\nw_min = 5\n", `x.toml:3: distill.w_min is a key of task "lcd"; this experiment has task = "diffusion"`},
		{"task = \"vae\"\n[diffusion]\nsnr_gamma = 5\n", `x.toml:3: diffusion.snr_gamma is a key of task "diffusion"; this experiment has task = "vae"`},
		{"[vae]\nkl_weight = 0.1\n", `x.toml:2: vae.kl_weight is a key of task "vae"; this experiment has task = "lcd"`},
		{"task = \"vae\"\n[run]\nvalidation_prompts = [\"a\"]\n", `x.toml:3: run.validation_prompts is a key of task "lcd" or "diffusion"`},
		{"task = \"diffusion\"\n[run]\neval_every = 10\n", `x.toml:3: run.eval_every is a key of task "lcd"`},
		{"task = \"vae\"\n[eval]\nseed = 1\n", `x.toml:3: eval.seed is a key of task "lcd"`},
	} {
		if got := parseErr(t, tc.doc); !strings.Contains(got, tc.want) {
			t.Errorf("%q: error %q, want it to contain %q", tc.doc, got, tc.want)
		}
	}
	if got := parseErr(t, "", "task=diffusion", "lora.rank=64"); !strings.Contains(got, `-set lora.rank=64: lora.rank is a key of task "lcd"`) {
		t.Errorf("-set: %q", got)
	}
	s := Default()
	s.Task = "vae"
	s.Distill.WMin = 3
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), `distill.w_min = 3: distill.w_min is a key of task "lcd"`) {
		t.Errorf("Validate: %v", err)
	}
	if got := parseErr(t, "task = \"gan\"\n"); !strings.Contains(got, `x.toml:1: task = "gan" must be one of "lcd", "diffusion", "vae"`) {
		t.Errorf("unknown task: %q", got)
	}
}

// Each task's resolved TOML holds its own sections only, and reads back to the same spec.
func TestTaskTOMLHoldsItsOwnSections(t *testing.T) {
	for task, want := range map[string][]string{
		"lcd": {"[distill]", "[lora]"}, "diffusion": {"[diffusion]"}, "vae": {"[vae]"},
	} {
		s, err := Parse(nil, "", []string{"task=" + task})
		if err != nil {
			t.Fatal(err)
		}
		data, err := s.TOML()
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range []string{"[distill]", "[lora]", "[diffusion]", "[vae]"} {
			if has := strings.Contains(string(data), "\n"+sec+"\n"); has != slices.Contains(want, sec) {
				t.Errorf("task %s: TOML has %s: %v", task, sec, has)
			}
		}
		if task == "vae" && strings.Contains(string(data), "validation_prompts") {
			t.Errorf("task vae: TOML has run.validation_prompts")
		}
		roundTrip(t, task, s)
	}
}
