package evaluation

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPromptsNameTheirClass: captions from the template name their class
// back, the longest label wins ("t-shirt/top" over "shirt"), and a prompt
// naming none is -1.
func TestPromptsNameTheirClass(t *testing.T) {
	labels := []string{"t-shirt/top", "trouser", "shirt", "ankle boot"}
	cfg := DefaultConfig()
	prompts, err := cfg.ResolvePrompts(labels)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a photo of a t-shirt/top", "a photo of a trouser", "a photo of a shirt", "a photo of an ankle boot"}
	if !slices.Equal(prompts, want) {
		t.Errorf("prompts %q, want %q", prompts, want)
	}
	for i, p := range prompts {
		if c := PromptClass(p, labels); c != i {
			t.Errorf("%q names class %d, want %d", p, c, i)
		}
	}
	if c := PromptClass("A SHIRT, folded", labels); c != 2 {
		t.Errorf("upper case shirt: class %d, want 2", c)
	}
	if c := PromptClass("a red circle", labels); c != -1 {
		t.Errorf("a prompt naming no class: %d, want -1", c)
	}
}

// TestConfigErrorsNameTheKey: an unknown [eval] key and bad values are
// refused by name; a prompts file gives its non-blank lines.
func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "eval.toml")
	if err := os.WriteFile(file, []byte("[eval]\nteacher = \"t\"\nstudent_stepz = [1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConfig(file); err == nil || !strings.Contains(err.Error(), "eval.student_stepz") || !strings.Contains(err.Error(), file) {
		t.Errorf("unknown key: %v, want an error naming eval.student_stepz and the file", err)
	}
	prompts := filepath.Join(dir, "prompts.txt")
	os.WriteFile(prompts, []byte("a cat\n\n  a dog \n"), 0o644)
	os.WriteFile(file, []byte("[eval]\nteacher = \"t\"\noutput_dir = \"o\"\nreference_steps = 25\nprompts_file = \""+prompts+"\"\n"), 0o644)
	cfg, err := ReadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReferenceSteps != 25 || cfg.TeacherGuidance != 7.5 || cfg.Validate() != nil {
		t.Errorf("read %+v: want reference_steps 25 over the defaults, valid", cfg)
	}
	if got, err := cfg.ResolvePrompts(nil); err != nil || !slices.Equal(got, []string{"a cat", "a dog"}) {
		t.Errorf("prompts file: %q, %v", got, err)
	}
	for key, mutate := range map[string]func(*Config){
		"eval.reference_steps = 0": func(c *Config) { c.ReferenceSteps = 0 },
		"eval.student_steps":       func(c *Config) { c.StudentSteps = []int{1, 0} },
		"eval.real_images":         func(c *Config) { c.RealImages = "x" },
		"eval.output_dir":          func(c *Config) { c.OutputDir = "" },
	} {
		c := cfg
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v", key, err)
		}
	}
}

// TestConfigCommentsStateDefaults: every [eval] key DefaultConfig sets is
// documented with its default, in its field's comment or the comment of
// the group it is declared in.
func TestConfigCommentsStateDefaults(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{} // field name → the comment above it or its group
	ast.Inspect(file, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Config" {
			return true
		}
		doc := ""
		for _, f := range ts.Type.(*ast.StructType).Fields.List {
			if f.Doc != nil {
				doc = f.Doc.Text()
			}
			for _, name := range f.Names {
				docs[name.Name] = strings.Join(strings.Fields(doc), " ")
			}
		}
		return false
	})
	def := reflect.ValueOf(DefaultConfig())
	for i := range def.NumField() {
		field, v := def.Type().Field(i), def.Field(i)
		if v.IsZero() {
			continue
		}
		var want string
		switch x := v.Interface().(type) {
		case string:
			want = strconv.Quote(x)
		case []int:
			s := make([]string, len(x))
			for j, n := range x {
				s[j] = strconv.Itoa(n)
			}
			want = "[" + strings.Join(s, ", ") + "]"
		default:
			want = fmt.Sprint(x)
		}
		if !strings.Contains(docs[field.Name], "default "+want) && !strings.Contains(docs[field.Name], "defaults to "+want) {
			t.Errorf("eval.%s: its comment does not state its default %s: %q", field.Tag.Get("toml"), want, docs[field.Name])
		}
	}
}
