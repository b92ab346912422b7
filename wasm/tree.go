package wasm

import (
	"encoding/json"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// SelfKey is the key under which a document puts the value of a path that
// also has values below it (the same shape as theusctl get).
const SelfKey = protocol.SelfKey

// document returns the entries at or under root (sorted by path, at least
// one) as one JSON document, protocol.Document's shape (theusctl get's).
func document(root contract.Path, es []cas.Entry) (json.RawMessage, error) {
	pe := make([]protocol.Entry, len(es))
	for i, e := range es {
		pe[i] = protocol.Entry{Path: string(e.Path), Value: e.Value, Version: uint64(e.Version)}
	}
	return protocol.Document(string(root), pe)
}
