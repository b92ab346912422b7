package flux

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Entry is one committed value: its full path and its value as JSON.
type Entry struct {
	Path  string
	Value []byte
}

// Tree builds a nested map from entries (path under a layer, JSON value), e.g. entries
// "domain.a.b"=1 and "domain.c"="x" with prefix "domain" give {"a":{"b":1},"c":"x"}.
//
// A path that has both a value and children (entries "domain.a"={"x":1}
// and "domain.a.b"=2): a JSON-object value merges with its children, a
// child winning over a key of the object with the same name ({"x":1,"b":2});
// any other value is replaced by the children ({"b":2}). The result does
// not depend on the order of entries. An entry equal to prefix is the base
// object of the whole tree by the same rule. An entry outside prefix, a
// path given twice or a value that is not JSON is an error. Numbers decode
// as float64. An empty prefix takes every entry.
func Tree(prefix string, entries []Entry) (map[string]any, error) {
	sorted := slices.Clone(entries)
	// A parent sorts before its children: a proper prefix sorts first.
	slices.SortStableFunc(sorted, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	root := map[string]any{}
	for i, e := range sorted {
		if i > 0 && sorted[i-1].Path == e.Path {
			return nil, fmt.Errorf("flux: tree: path %q given twice", e.Path)
		}
		rest, ok := underPrefix(prefix, e.Path)
		if !ok {
			return nil, fmt.Errorf("flux: tree: path %q is not under %q", e.Path, prefix)
		}
		var v any
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return nil, fmt.Errorf("flux: tree: value of %q: %w", e.Path, err)
		}
		if rest == "" {
			if m, ok := v.(map[string]any); ok {
				root = m
			}
			continue
		}
		segs := strings.Split(rest, ".")
		node := root
		for _, seg := range segs[:len(segs)-1] {
			child, ok := node[seg].(map[string]any)
			if !ok { // absent, or a non-object value that the children replace
				child = map[string]any{}
				node[seg] = child
			}
			node = child
		}
		node[segs[len(segs)-1]] = v
	}
	return root, nil
}

// underPrefix returns path without "prefix.", and whether path is under
// prefix (or is prefix: then rest is "").
func underPrefix(prefix, path string) (rest string, ok bool) {
	if prefix == "" {
		return path, path != ""
	}
	if path == prefix {
		return "", true
	}
	rest, ok = strings.CutPrefix(path, prefix+".")
	return rest, ok && rest != ""
}
