//go:build !wasm

// (client, which this test holds document to, uses Unix sockets.)

package wasm

import (
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// A page's get prints what theusctl get prints: document is held to
// client.Value.JSON on the shapes that matter (a leaf, a subtree, a path
// with a value and children, deep nesting).
func TestDocumentIsTheusctlGet(t *testing.T) {
	tests := []struct {
		name    string
		root    string
		entries map[string]string
	}{
		{"a leaf", "domain.counter", map[string]string{"domain.counter": "4"}},
		{"a subtree", "domain", map[string]string{"domain.accounts.alice": "70", "domain.accounts.bob": "40", "domain.counter": "5"}},
		{"a value with children", "domain.a", map[string]string{"domain.a": `{"x":1}`, "domain.a.b": "2", "domain.a.b.c": `"deep"`}},
		{"a log", "domain.log_events", map[string]string{"domain.log_events.00000000000000000001": `"a"`, "domain.log_events.00000000000000000002": `"b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d cas.Delta
			for p, v := range tt.entries {
				d.Set(contract.Path(p), []byte(v))
			}
			s := cas.New(cas.Config{})
			if _, err := s.Commit(t.Context(), 0, nil, d, cas.Options{}); err != nil {
				t.Fatal(err)
			}
			snap := s.Snapshot()
			defer snap.Release()
			es := snap.Subtree(contract.Path(tt.root))
			got, err := document(contract.Path(tt.root), es)
			if err != nil {
				t.Fatal(err)
			}
			v := &client.Value{Path: tt.root}
			for _, e := range es {
				v.Entries = append(v.Entries, protocol.Entry{Path: string(e.Path), Value: e.Value, Version: uint64(e.Version)})
			}
			want, err := v.JSON()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s (theusctl get)", got, want)
			}
		})
	}
}
