package wasm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// Snapshot is a whole Context as JSON, for a page to keep (in
// localStorage, in a file) and start another Runtime from: cas.State
// with each value as JSON, or as base64 bytes for the few values that are
// not JSON (the YAML source of a Flux run).
type Snapshot struct {
	Version uint64            `json:"version"`
	Entries []SnapshotEntry   `json:"entries"`
	Seqs    map[string]uint64 `json:"seqs,omitempty"` // LOG roots' next entry numbers
	OpIDs   []SnapshotOpID    `json:"op_ids,omitempty"`
}

// SnapshotEntry is one path's value and the version that wrote it.
type SnapshotEntry struct {
	Path    string          `json:"path"`
	Version uint64          `json:"version"`
	Value   json.RawMessage `json:"value,omitempty"`
	Bytes   []byte          `json:"bytes,omitempty"` // a value that is not JSON
}

// SnapshotOpID is one op id of the window with its first outcome.
type SnapshotOpID struct {
	ID      string          `json:"id"`
	Version uint64          `json:"version"`
	Digest  string          `json:"digest,omitempty"` // hex; empty for unknown
	Result  json.RawMessage `json:"result,omitempty"`
	Bytes   []byte          `json:"result_bytes,omitempty"`
}

// Snapshot returns the Context at its newest version (Export, as JSON).
func (r *Runtime) Snapshot() Snapshot {
	st := r.store.Export()
	out := Snapshot{Version: uint64(st.Version), Entries: make([]SnapshotEntry, 0, len(st.Entries))}
	for _, e := range st.Entries {
		se := SnapshotEntry{Path: string(e.Path), Version: uint64(e.Version)}
		se.Value, se.Bytes = split(e.Value)
		out.Entries = append(out.Entries, se)
	}
	for root, next := range st.Seqs {
		if out.Seqs == nil {
			out.Seqs = map[string]uint64{}
		}
		out.Seqs[string(root)] = next
	}
	for _, o := range st.OpIDs {
		so := SnapshotOpID{ID: o.ID, Version: uint64(o.Version)}
		if o.Digest.Known() {
			so.Digest = hex.EncodeToString(o.Digest[:])
		}
		so.Result, so.Bytes = split(o.Result)
		out.OpIDs = append(out.OpIDs, so)
	}
	return out
}

// split puts v where JSON can carry it unchanged.
func split(v []byte) (json.RawMessage, []byte) {
	if len(v) > 0 && json.Valid(v) {
		return json.RawMessage(v), nil
	}
	return nil, v
}

// State is s as Config.Restore takes it. A malformed snapshot is a
// bad_request; Restore checks the rest (paths, versions, duplicates).
func (s Snapshot) State() (cas.State, error) {
	st := cas.State{Version: cas.Version(s.Version), Entries: make([]cas.Entry, 0, len(s.Entries)), Seqs: map[contract.Path]uint64{}}
	for _, e := range s.Entries {
		if len(e.Value) > 0 && len(e.Bytes) > 0 {
			return cas.State{}, &protocol.Error{Code: protocol.CodeBadRequest, Message: "snapshot: an entry has both a value and bytes", Path: e.Path}
		}
		v := []byte(e.Value)
		if len(e.Bytes) > 0 {
			v = e.Bytes
		}
		st.Entries = append(st.Entries, cas.Entry{Path: contract.Path(e.Path), Value: v, Version: cas.Version(e.Version)})
	}
	for root, next := range s.Seqs {
		st.Seqs[contract.Path(root)] = next
	}
	for _, o := range s.OpIDs {
		rec := cas.OpRecord{ID: o.ID, Version: cas.Version(o.Version), Result: o.Result}
		if len(o.Bytes) > 0 {
			rec.Result = o.Bytes
		}
		if o.Digest != "" {
			d, err := hex.DecodeString(o.Digest)
			if err != nil || len(d) != len(rec.Digest) {
				return cas.State{}, protocol.Errorf(protocol.CodeBadRequest, "snapshot: op id %q: digest %q is not %d hex bytes", o.ID, o.Digest, len(rec.Digest))
			}
			copy(rec.Digest[:], d)
		}
		st.OpIDs = append(st.OpIDs, rec)
	}
	return st, nil
}

// ParseSnapshot decodes a Snapshot from its JSON, refusing unknown keys.
func ParseSnapshot(b []byte) (Snapshot, error) {
	var s Snapshot
	if err := strictJSON(b, &s); err != nil {
		return Snapshot{}, protocol.Errorf(protocol.CodeBadRequest, "snapshot: %v", err)
	}
	return s, nil
}

// strictJSON decodes b into v, refusing unknown keys and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}
