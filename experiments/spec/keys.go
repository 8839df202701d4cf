package spec

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// field is one settable key of the spec, "section.name", and where it lives in Spec.
type field struct {
	key     string // "distill.w_min"; a top-level key has no section: "task"
	sec     string // the section's name, "" for a top-level key
	section int    // index of the section struct (or the top-level field) in Spec
	index   []int  // index path of the field inside the section struct (embedded structs flattened)
	typ     reflect.Type
}

// value returns the addressable field of s that f names.
func (f field) value(s *Spec) reflect.Value {
	v := reflect.ValueOf(s).Elem().Field(f.section)
	if len(f.index) == 0 {
		return v // a top-level key
	}
	return v.FieldByIndex(f.index)
}

// fields lists every key in declaration order, built from Spec's toml tags so the struct stays the
// one description of the schema. sections lists the section names in order.
var fields, sections = schema()

// fieldByKey indexes fields by their key.
var fieldByKey = func() map[string]field {
	m := make(map[string]field, len(fields))
	for _, f := range fields {
		m[f.key] = f
	}
	return m
}()

func schema() ([]field, []string) {
	var fs []field
	var secs []string
	st := reflect.TypeFor[Spec]()
	for i := range st.NumField() {
		sf := st.Field(i)
		sec := sf.Tag.Get("toml")
		if sf.Type.Kind() != reflect.Struct {
			// A top-level key (task): no section, and TOML writes it before the first table.
			fs = append(fs, field{key: sec, section: i, typ: sf.Type})
			continue
		}
		secs = append(secs, sec)
		for _, ff := range reflect.VisibleFields(sf.Type) {
			tag := ff.Tag.Get("toml")
			if ff.Anonymous || tag == "-" || !ff.IsExported() {
				continue // an embedded struct's own fields are listed; "-" is set by code, not files
			}
			switch t := ff.Type; {
			case t.Kind() == reflect.String, t.Kind() == reflect.Bool, t.Kind() == reflect.Int,
				t.Kind() == reflect.Int64, t.Kind() == reflect.Float64,
				t.Kind() == reflect.Slice && (t.Elem().Kind() == reflect.String || t.Elem().Kind() == reflect.Int):
			default:
				panic(fmt.Sprintf("spec: %s.%s has unsupported type %s", sf.Name, ff.Name, t))
			}
			fs = append(fs, field{key: sec + "." + tag, sec: sec, section: i, index: ff.Index, typ: ff.Type})
		}
	}
	return fs, secs
}

// Keys returns every valid key, "section.name", in declaration order.
func Keys() []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

// diffusersFlags maps the argument names of diffusers' train_lcm_distill_* scripts (and a few
// common spellings) to the key that replaces them, so that users coming from the scripts get
// pointed at the right key.
var diffusersFlags = map[string]string{
	"pretrained_teacher_model":          "model.path",
	"pretrained_vae_model_name_or_path": "model.vae",
	"teacher_revision":                  "model.revision",
	"unet_time_cond_proj_dim":           "distill.time_cond_proj_dim",
	"loss_type":                         "distill.loss",
	"lora_rank":                         "lora.rank",
	"lora_alpha":                        "lora.alpha",
	"lora_dropout":                      "lora.dropout",
	"lora_target_modules":               "lora.targets",
	"train_shards_path_or_url":          "data.sources",
	"interpolation_type":                "data.interpolation",
	"use_fix_crop_and_size":             "data.fix_crop_and_size",
	"dataloader_num_workers":            "data.workers",
	"train_batch_size":                  "data.batch_size",
	"learning_rate":                     "optim.lr",
	"adam_beta1":                        "optim.beta1",
	"adam_beta2":                        "optim.beta2",
	"adam_weight_decay":                 "optim.weight_decay",
	"adam_epsilon":                      "optim.eps",
	"lr_scheduler":                      "optim.schedule",
	"lr_warmup_steps":                   "optim.warmup_steps",
	"checkpointing_steps":               "run.checkpoint_every",
	"checkpoints_total_limit":           "run.checkpoints_keep",
	"resume_from_checkpoint":            "run.resume",
	"validation_steps":                  "run.validation_every",
	"pretrained_model_name_or_path":     "model.path",
	"num_inference_steps":               "run.validation_inference_steps",
	"guidance_scale":                    "run.validation_guidance",
}

// unknownKeyHint says what to write instead of an unknown key: the closest valid key by edit
// distance (or the key replacing a diffusers flag of that name), else the keys of its section,
// else the sections.
func unknownKeyHint(key string) string {
	// The section is the first part, the name the last: "model.distill.w_min" is w_min misplaced.
	parts := strings.Split(key, ".")
	sec, leaf, hasSec := parts[0], parts[len(parts)-1], len(parts) > 1
	if !hasSec {
		sec = ""
	}
	leaf = strings.ReplaceAll(strings.TrimLeft(leaf, "-"), "-", "_")
	if k := diffusersFlags[leaf]; k != "" && k != key {
		return fmt.Sprintf("did you mean %q?", k)
	}
	best, bestD := "", 1<<30
	for _, f := range fields {
		fsec, fleaf, _ := strings.Cut(f.key, ".")
		d := editDistance(key, f.key)
		if ld := editDistance(leaf, fleaf); fsec != sec {
			d = min(d, ld+1) // the right name in the wrong (or no) section
		} else {
			d = min(d, ld)
		}
		if d < bestD {
			best, bestD = f.key, d
		}
	}
	if bestD <= max(2, len(leaf)/3) {
		return fmt.Sprintf("did you mean %q?", best)
	}
	if hasSec && isSection(sec) {
		return fmt.Sprintf("keys in [%s]: %s", sec, strings.Join(sectionLeaves(sec), ", "))
	}
	return "sections: " + strings.Join(sections, ", ")
}

// unknownSectionHint is unknownKeyHint for a [table] header.
func unknownSectionHint(name string) string {
	best, bestD := "", 1<<30
	for _, s := range sections {
		if d := editDistance(name, s); d < bestD {
			best, bestD = s, d
		}
	}
	if bestD <= 2 {
		return fmt.Sprintf("did you mean [%s]?", best)
	}
	return "sections: " + strings.Join(sections, ", ")
}

func isSection(name string) bool {
	for _, s := range sections {
		if s == name {
			return true
		}
	}
	return false
}

func sectionLeaves(sec string) []string {
	var leaves []string
	for _, f := range fields {
		if s, leaf, _ := strings.Cut(f.key, "."); s == sec {
			leaves = append(leaves, leaf)
		}
	}
	sort.Strings(leaves)
	return leaves
}

// editDistance is the optimal-string-alignment distance: insertions, deletions, substitutions
// and transpositions of adjacent characters each cost 1, so "w_mni" is 1 away from "w_min".
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
