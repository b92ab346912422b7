package wasm

import (
	"encoding/json"
	"strings"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// SelfKey is the key under which a document puts the value of a path that
// also has values below it (client.SelfKey: the same shape as theusctl
// get).
const SelfKey = "_value"

// document returns the entries at or under root (sorted by path, at least
// one) as one JSON document: the value itself when root has nothing
// below it, else an object nesting the entries below by segment, a path's
// own value under SelfKey. It is client.Value.JSON's shape, which a test
// holds it to.
func document(root contract.Path, es []cas.Entry) (json.RawMessage, error) {
	if len(es) == 1 && es[0].Path == root {
		return json.RawMessage(es[0].Value), nil
	}
	top := map[string]any{}
	for _, e := range es {
		if e.Path == root {
			top[SelfKey] = json.RawMessage(e.Value)
			continue
		}
		rest := strings.TrimPrefix(string(e.Path), string(root)+".")
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
