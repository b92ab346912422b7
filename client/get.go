package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/theus-run/theus/protocol"
)

// Value is what Get returns: every entry at or under a path, sorted by
// path; a path may hold a value and have values below it.
type Value struct {
	Path    string
	Version uint64 // the version read
	Entries []protocol.Entry
}

// Get reads the value at path and everything under it. When nothing is
// there the error is a *protocol.Error with code not_found and the path
// (errors.Is(err, protocol.ErrNotFound)): a Value always has an entry.
func (c *Client) Get(ctx context.Context, path string) (*Value, error) {
	m, err := c.roundTrip(ctx, func(id uint64) protocol.Message { return &protocol.Get{ID: id, Path: path} })
	if err != nil {
		return nil, err
	}
	rep, ok := m.(*protocol.GetReply)
	if !ok {
		return nil, fmt.Errorf("client: got %s for a get", m.Kind())
	}
	if rep.Err != nil {
		return nil, rep.Err
	}
	return &Value{Path: path, Version: rep.Version, Entries: rep.Entries}, nil
}

// SelfKey is the key under which JSON puts the value of a path that also
// has values below it.
const SelfKey = protocol.SelfKey

// JSON returns the value as one JSON document: the value itself when the
// path has nothing below it, else an object nesting the entries below by
// segment (a path's own value under SelfKey). It returns "null" for a
// Value without entries (one built by hand: Get never returns one).
func (v *Value) JSON() (json.RawMessage, error) {
	if len(v.Entries) == 0 {
		return json.RawMessage("null"), nil
	}
	doc, err := protocol.Document(v.Path, v.Entries)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return doc, nil
}
