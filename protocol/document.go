package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
)

// SelfKey is the key under which a document puts the value of a path
// that also has values below it.
const SelfKey = "_value"

// Document returns entries at or under root (sorted by path, at least
// one) as one JSON document, the shape `theusctl get` prints: the value
// itself when root has nothing below it, else an object nesting the
// entries below by segment, a path's own value under SelfKey. An entry
// not under root is an error.
func Document(root string, entries []Entry) (json.RawMessage, error) {
	if len(entries) == 1 && entries[0].Path == root {
		return entries[0].Value, nil
	}
	top := map[string]any{}
	for _, e := range entries {
		if e.Path == root {
			top[SelfKey] = json.RawMessage(e.Value)
			continue
		}
		rest, ok := strings.CutPrefix(e.Path, root+".")
		if !ok {
			return nil, fmt.Errorf("entry %s is not under %s", e.Path, root)
		}
		segs := strings.Split(rest, ".")
		node := top
		for _, s := range segs[:len(segs)-1] {
			next, ok := node[s].(map[string]any)
			if !ok {
				next = map[string]any{}
				if own, isVal := node[s].(json.RawMessage); isVal {
					next[SelfKey] = own
				}
				node[s] = next
			}
			node = next
		}
		last := segs[len(segs)-1]
		if sub, ok := node[last].(map[string]any); ok {
			sub[SelfKey] = json.RawMessage(e.Value)
		} else {
			node[last] = json.RawMessage(e.Value)
		}
	}
	return json.Marshal(top)
}
