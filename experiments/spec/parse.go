package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// ExperimentsDir is where FindFile looks for a name that is not found as given.
const ExperimentsDir = "experiments"

// FindFile returns the experiment file called name: name itself when it is a file, else
// experiments/name relative to the working directory; the error lists the paths tried.
func FindFile(name string) (string, error) {
	tried := []string{name}
	if isFile(name) {
		return name, nil
	}
	if st, err := os.Stat(name); err == nil && st.IsDir() {
		return "", fmt.Errorf("experiment file %q is a folder; name a .toml file in it (e.g. %s)", name, filepath.Join(name, "experiment.toml"))
	}
	if !filepath.IsAbs(name) {
		alt := filepath.Join(ExperimentsDir, name)
		tried = append(tried, alt)
		if isFile(alt) {
			return alt, nil
		}
	}
	return "", fmt.Errorf("experiment file %q not found (tried %s)", name, strings.Join(tried, ", "))
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// Load reads the experiment file at path (only the defaults when path is ""), then applies sets
// and validates, as Parse.
func Load(path string, sets []string) (Spec, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Spec{}, fmt.Errorf("experiment file: %w", err)
		}
	}
	return Parse(data, path, sets)
}

// Parse resolves a spec: Default, then the TOML document data (named filename in errors), then
// each "section.key=value" of sets in order, then Validate. Every problem found is reported, each
// on its own line of the joined error, prefixed with where the offending value was written
// ("file.toml:12" or "-set key=value").
//
// A -set value is read as a TOML value (3, 1e-4, true, "text", [1, 2]); for a string key, text
// that is not a quoted TOML string is taken as is, so -set run.resume=latest works unquoted.
func Parse(data []byte, filename string, sets []string) (Spec, error) {
	s := Default()
	d := decoder{spec: &s, origin: map[string]string{}}
	if filename == "" {
		filename = "<spec>"
	}
	d.document(data, filename)
	for _, arg := range sets {
		d.set(arg)
	}
	// A key of another task is refused where it was written, even at its default value.
	for _, f := range fields {
		if where := d.origin[f.key]; where != "" && !KeyOfTask(f.key, s.Task) {
			d.errorf("%s: %s", where, foreignKeyMessage(f.key, s.Task))
		}
	}
	if len(d.errs) > 0 {
		return Spec{}, errors.Join(d.errs...)
	}
	ps := s.problems()
	if len(ps) == 0 {
		return s, nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = errors.New(p.msg)
		for _, k := range p.keys {
			if where := d.origin[k]; where != "" {
				errs[i] = fmt.Errorf("%s: %s", where, p.msg)
				break
			}
		}
	}
	return Spec{}, errors.Join(errs...)
}

// decoder applies TOML documents and -set overrides to a spec, collecting every error and
// remembering where each key was last written.
type decoder struct {
	spec   *Spec
	origin map[string]string // key -> "file.toml:12" or "-set key=value"
	errs   []error
}

func (d *decoder) errorf(format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf(format, args...))
}

// document applies one TOML document.
func (d *decoder) document(data []byte, filename string) {
	if len(data) == 0 {
		return
	}
	// go-toml's decoder enforces the TOML rules the walk below relies on: syntax, and no key or
	// table defined twice.
	var generic map[string]any
	if err := toml.Unmarshal(data, &generic); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			where := fmt.Sprintf("%s:%d", filename, row)
			if key := keyOnLine(data, row); key != "" {
				where += ": " + key // go-toml names no key for a value it cannot hold (an int past int64)
			}
			d.errorf("%s: %s", where, strings.TrimPrefix(de.Error(), "toml: "))
		} else {
			d.errorf("%s: %v", filename, err)
		}
		return
	}
	var p unstable.Parser
	p.Reset(data)
	var table []string // the current [section]; nil at the top level
	skip := false      // inside an unknown table, already reported
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			parts, first := keyParts(e)
			where := fmt.Sprintf("%s:%d", filename, p.Shape(first.Raw).Start.Line)
			name := strings.Join(parts, ".")
			table, skip = parts, false
			switch {
			case e.Kind == unstable.ArrayTable:
				d.errorf("%s: [[%s]]: arrays of tables are not part of the spec (sections: %s)", where, name,
					strings.Join(sections, ", "))
				skip = true
			case len(parts) != 1 || !isSection(name):
				d.errorf("%s: unknown section [%s] (%s)", where, name, unknownSectionHint(name))
				skip = true
			}
		case unstable.KeyValue:
			if !skip {
				d.keyValue(&p, e, table, filename)
			}
		}
	}
	if err := p.Error(); err != nil { // not expected once toml.Unmarshal accepted the document
		d.errorf("%s: %v", filename, err)
	}
}

// keyOnLine is the key a "key = value" line of a TOML document sets, under the [section] above it
// ("" when the line holds no such pair). It reads lines as text, since it serves documents the
// parser refused.
func keyOnLine(data []byte, row int) string {
	lines := strings.Split(string(data), "\n")
	if row < 1 || row > len(lines) {
		return ""
	}
	key, _, ok := strings.Cut(lines[row-1], "=")
	key = strings.Trim(strings.TrimSpace(key), `"'`)
	if !ok || key == "" || strings.HasPrefix(key, "[") || strings.HasPrefix(key, "#") {
		return ""
	}
	for i := row - 2; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "[") && !strings.HasPrefix(l, "[[") {
			if section, _, ok := strings.Cut(strings.TrimPrefix(l, "["), "]"); ok {
				return strings.TrimSpace(section) + "." + key
			}
		}
	}
	return key
}

// keyValue applies one "key = value" found under the table prefix; an inline table applies each of
// its entries.
func (d *decoder) keyValue(p *unstable.Parser, kv *unstable.Node, prefix []string, filename string) {
	parts, first := keyParts(kv)
	parts = append(slices.Clone(prefix), parts...)
	key := strings.Join(parts, ".")
	where := fmt.Sprintf("%s:%d", filename, p.Shape(first.Raw).Start.Line)
	value := kv.Value()
	if value.Kind == unstable.InlineTable && len(parts) == 1 && isSection(key) {
		it := value.Children()
		for it.Next() {
			if it.Node().Kind == unstable.KeyValue {
				d.keyValue(p, it.Node(), parts, filename)
			}
		}
		return
	}
	f, ok := fieldByKey[key]
	switch {
	case !ok && len(parts) == 1 && isSection(key):
		d.errorf("%s: %s is a section, not a key: write [%s] and its keys below it", where, key, key)
		return
	case !ok:
		d.errorf("%s: unknown key %q (%s)", where, key, unknownKeyHint(key))
		return
	}
	v, err := convert(f.typ, value)
	if err != nil {
		d.errorf("%s: %s = %s: %v", where, key, valueText(p, kv), err)
		return
	}
	f.value(d.spec).Set(v)
	d.origin[key] = where
}

// set applies one -set override, "section.key=value".
func (d *decoder) set(arg string) {
	where := "-set " + arg
	key, text, ok := strings.Cut(arg, "=")
	key = strings.TrimSpace(key)
	if !ok {
		d.errorf("%s: want section.key=value", where)
		return
	}
	f, found := fieldByKey[key]
	switch {
	case !found && isSection(key):
		d.errorf("%s: %s is a section: set its keys one by one, e.g. -set %s", where, key, sectionExample(key))
		return
	case !found:
		d.errorf("%s: unknown key %q (%s)", where, key, unknownKeyHint(key))
		return
	}
	v, err := parseSetValue(f.typ, text)
	switch {
	case f.typ.Kind() == reflect.String && err != nil:
		// A bare word (or anything else that is not a quoted TOML string) for a string key.
		v = reflect.ValueOf(strings.TrimSpace(text)).Convert(f.typ)
	case err != nil:
		d.errorf("%s: %v", where, err)
		return
	}
	f.value(d.spec).Set(v)
	d.origin[key] = where
}

// parseSetValue reads text as one TOML value of type t.
func parseSetValue(t reflect.Type, text string) (reflect.Value, error) {
	want := fmt.Errorf("want %s", typeName(t))
	var p unstable.Parser
	p.Reset([]byte("v = " + text))
	if !p.NextExpression() || p.Expression().Kind != unstable.KeyValue {
		return reflect.Value{}, want
	}
	v, err := convert(t, p.Expression().Value())
	if err != nil {
		return reflect.Value{}, err
	}
	if p.NextExpression() || p.Error() != nil { // trailing text after the value
		return reflect.Value{}, want
	}
	return v, nil
}

// convert turns a TOML value node into a value of type t, or says what t wants.
func convert(t reflect.Type, n *unstable.Node) (reflect.Value, error) {
	want := fmt.Errorf("want %s", typeName(t))
	text := strings.ReplaceAll(string(n.Data), "_", "")
	switch t.Kind() {
	case reflect.String:
		if n.Kind == unstable.String {
			return reflect.ValueOf(string(n.Data)).Convert(t), nil
		}
	case reflect.Bool:
		if n.Kind == unstable.Bool {
			return reflect.ValueOf(string(n.Data) == "true").Convert(t), nil
		}
	case reflect.Int, reflect.Int64:
		if n.Kind == unstable.Integer {
			i, err := strconv.ParseInt(text, 0, 64)
			if err != nil {
				return reflect.Value{}, fmt.Errorf("want %s (%s does not fit in 64 bits)", typeName(t), n.Data)
			}
			return reflect.ValueOf(i).Convert(t), nil
		}
	case reflect.Float64:
		switch n.Kind {
		case unstable.Integer:
			i, err := strconv.ParseInt(text, 0, 64)
			if err != nil {
				return reflect.Value{}, want
			}
			return reflect.ValueOf(float64(i)).Convert(t), nil
		case unstable.Float:
			if strings.Contains(text, "inf") || strings.Contains(text, "nan") {
				return reflect.Value{}, errors.New("want a finite number")
			}
			f, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return reflect.Value{}, want
			}
			return reflect.ValueOf(f).Convert(t), nil
		}
	case reflect.Slice:
		if n.Kind != unstable.Array {
			break
		}
		out := reflect.MakeSlice(t, 0, 4)
		it := n.Children()
		for it.Next() {
			if it.Node().Kind == unstable.Comment {
				continue
			}
			e, err := convert(t.Elem(), it.Node())
			if err != nil {
				return reflect.Value{}, want
			}
			out = reflect.Append(out, e)
		}
		if out.Len() == 0 {
			return reflect.Zero(t), nil // [] and an unset list are the same: nil
		}
		return out, nil
	}
	return reflect.Value{}, want
}

// typeName says what a key of type t accepts, for "want ..." errors.
func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array of integers"
	}
	return t.String()
}

// keyParts returns the parts of a KeyValue's or table header's key and the first part's node (for
// its line).
func keyParts(n *unstable.Node) (parts []string, first *unstable.Node) {
	it := n.Key()
	for it.Next() {
		if first == nil {
			first = it.Node()
		}
		parts = append(parts, string(it.Node().Data))
	}
	return parts, first
}

// valueText is the value of a key-value as written, on one line and shortened, for error messages.
func valueText(p *unstable.Parser, kv *unstable.Node) string {
	var last *unstable.Node
	it := kv.Key()
	for it.Next() {
		last = it.Node()
	}
	start := int(last.Raw.Offset + last.Raw.Length)
	end := int(kv.Raw.Offset + kv.Raw.Length)
	text := strings.TrimSpace(string(p.Data()[start:end]))
	text = strings.Join(strings.Fields(strings.TrimPrefix(text, "=")), " ")
	if r := []rune(text); len(r) > 60 {
		text = string(r[:57]) + "..."
	}
	return text
}

// sectionExample is "section.key=value" for the section's first key, with its default value.
func sectionExample(sec string) string {
	def := Default()
	for _, f := range fields {
		if strings.HasPrefix(f.key, sec+".") {
			return f.key + "=" + formatValue(f.value(&def))
		}
	}
	return sec + ".KEY=VALUE"
}
