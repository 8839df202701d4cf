package spec

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ConfigFile is the name of the resolved spec that Save writes into the output folder.
const ConfigFile = "config.toml"

// TOML returns the fully resolved spec, every key of every section, as a TOML document that Parse
// reads back to an equal Spec. It fails only on a string that is not valid UTF-8, which TOML
// cannot hold.
func (s Spec) TOML() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# golcm experiment, fully resolved: every key with its value, defaults included.\n")
	prev := ""
	for _, f := range fields {
		if !KeyOfTask(f.key, s.Task) {
			continue // another task's key: a file of this task may not state it
		}
		if f.sec != prev {
			fmt.Fprintf(&b, "\n[%s]\n", f.sec)
			prev = f.sec
		}
		v := f.value(&s)
		if err := checkUTF8(v); err != nil {
			return nil, fmt.Errorf("%s: %w", f.key, err)
		}
		leaf := f.key[len(f.sec):]
		leaf = strings.TrimPrefix(leaf, ".")
		fmt.Fprintf(&b, "%s = %s\n", leaf, formatMultiline(v))
	}
	return b.Bytes(), nil
}

// Save writes the resolved spec to dir/config.toml, creating dir if needed. It writes a temporary
// file and renames it, so a crash never leaves a half-written config behind.
func (s Spec) Save(dir string) error {
	data, err := s.TOML()
	if err != nil {
		return fmt.Errorf("save spec: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save spec: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+ConfigFile+".*")
	if err != nil {
		return fmt.Errorf("save spec: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, ConfigFile))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("save spec: %w", err)
	}
	return nil
}

// formatValue writes v as a one-line TOML value; error messages quote values with it.
func formatValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return formatFloat(v.Float())
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatValue(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	panic(fmt.Sprintf("spec: cannot format %s", v.Type()))
}

// formatMultiline is formatValue, with one element per line for arrays too long for one line.
func formatMultiline(v reflect.Value) string {
	one := formatValue(v)
	if v.Kind() != reflect.Slice || len(one) <= 80 {
		return one
	}
	var b strings.Builder
	b.WriteString("[\n")
	for i := range v.Len() {
		fmt.Fprintf(&b, "  %s,\n", formatValue(v.Index(i)))
	}
	b.WriteString("]")
	return b.String()
}

// formatFloat writes the shortest text that reads back to f: 15, 0.95, 1e-08. A whole number
// looks like a TOML integer, which every float key accepts.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// quote writes s as a TOML basic string: backslash and double quote escaped, control characters
// as TOML escapes (TOML has no \x or \a, so Go's strconv.Quote does not fit).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func checkUTF8(v reflect.Value) error {
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return fmt.Errorf("%q is not valid UTF-8", v.String())
		}
	case reflect.Slice:
		for i := range v.Len() {
			if err := checkUTF8(v.Index(i)); err != nil {
				return err
			}
		}
	}
	return nil
}
