package spec

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fieldComments returns the doc comment of every key, read from the files that declare the
// spec's structs: spec.go, and datasets/config.go for the [data] keys of the embedded
// datasets.Config.
func fieldComments(t *testing.T) map[string]string {
	t.Helper()
	docs := map[string]string{}
	for _, src := range []struct{ file, pkg string }{{"spec.go", "spec"}, {"../../datasets/config.go", "datasets"}} {
		file, err := parser.ParseFile(token.NewFileSet(), src.file, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return false
			}
			for _, fl := range st.Fields.List {
				if fl.Tag == nil || len(fl.Names) == 0 {
					continue // an embedded struct: its fields are read from its own file
				}
				tag, _ := strconv.Unquote(fl.Tag.Value)
				name := reflect.StructTag(tag).Get("toml")
				if name == "-" {
					continue
				}
				if ts.Name.Name == "Spec" { // the top-level keys; the sections are read below
					if f, ok := fieldByKey[name]; ok && f.sec == "" && src.pkg == "spec" {
						docs[name] = strings.Join(strings.Fields(fl.Doc.Text()), " ")
					}
					continue
				}
				var key string
				for _, f := range fields {
					if f.sec == "" {
						continue
					}
					owner := reflect.TypeFor[Spec]().Field(f.section).Type // the struct declaring f
					for _, i := range f.index[:len(f.index)-1] {
						owner = owner.Field(i).Type
					}
					if strings.HasSuffix(f.key, "."+name) && owner.Name() == ts.Name.Name &&
						strings.HasSuffix(owner.PkgPath(), "/"+src.pkg) {
						key = f.key
					}
				}
				if key == "" {
					t.Errorf("%s.%s: no key", ts.Name.Name, fl.Names[0].Name)
					continue
				}
				docs[key] = strings.Join(strings.Fields(fl.Doc.Text()), " ")
			}
			return false
		})
	}
	if len(docs) != len(fields) {
		t.Errorf("found %d field comments, the spec has %d keys", len(docs), len(fields))
	}
	return docs
}

// Every field's comment states its default, and for scalars the stated default is Default()'s.
func TestFieldCommentsStateTheirDefaults(t *testing.T) {
	def := Default()
	stated := regexp.MustCompile(`Default (\S+?)\.?(\s|$)`)
	for key, doc := range fieldComments(t) {
		v := fieldByKey[key].value(&def)
		if v.Kind() == reflect.Slice {
			if !strings.Contains(doc, "Default") {
				t.Errorf("%s: comment does not state the default", key)
			}
			continue
		}
		m := stated.FindStringSubmatch(doc)
		switch {
		case m == nil:
			t.Errorf("%s: comment does not state the default", key)
		case v.Kind() == reflect.Float64:
			if x, err := strconv.ParseFloat(m[1], 64); err != nil || x != v.Float() {
				t.Errorf("%s: comment says default %s, Default() has %v", key, m[1], v.Float())
			}
		case m[1] != formatValue(v):
			t.Errorf("%s: comment says default %s, Default() has %s", key, m[1], formatValue(v))
		}
	}
}

// The comment of a key with a fixed set of values quotes exactly the values Validate accepts: a
// value the code refuses is not advertised, and every accepted one is documented.
func TestFieldCommentsQuoteTheAcceptedValues(t *testing.T) {
	quoted := regexp.MustCompile(`"([^"\s]*)"`)
	docs := fieldComments(t)
	accepted := acceptedValues()
	if len(accepted) < 6 {
		t.Fatalf("only %d keys with a fixed set of values: %v", len(accepted), accepted)
	}
	for key, values := range accepted {
		var inDoc []string
		for _, m := range quoted.FindAllStringSubmatch(docs[key], -1) {
			if !slices.Contains(inDoc, m[1]) {
				inDoc = append(inDoc, m[1])
			}
		}
		slices.Sort(inDoc)
		values = slices.Sorted(slices.Values(values))
		if !slices.Equal(inDoc, values) {
			t.Errorf("%s: comment quotes %q, Validate accepts %q", key, inDoc, values)
		}
	}
}
