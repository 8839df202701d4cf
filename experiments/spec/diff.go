package spec

import "reflect"

// Change is one key whose value differs between two specs, values as TOML writes them.
type Change struct {
	Key      string
	Old, New string
}

// Changes lists the keys whose values differ from old to new, in declaration order.
func Changes(old, new Spec) []Change {
	var out []Change
	for _, f := range fields {
		a, b := f.value(&old), f.value(&new)
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			continue
		}
		// An empty list and a missing one are the same setting.
		if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
			continue
		}
		out = append(out, Change{Key: f.key, Old: formatValue(a), New: formatValue(b)})
	}
	return out
}
