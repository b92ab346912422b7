package cas

import (
	"fmt"
	"slices"
	"strings"

	"github.com/theus-run/theus/contract"
)

// State is a store's content as a journal keeps it: the newest value of
// every path with the version that wrote it, the LOG roots' numbering and
// the op id window. Restore reads it; a journal builds it from Commits.
type State struct {
	Version Version
	Entries []Entry                  // one per path holding a value
	Seqs    map[contract.Path]uint64 // LOG roots' next entry numbers
	OpIDs   []OpRecord               // oldest first
}

// OpRecord is one op id of the window and its first commit's outcome.
type OpRecord struct {
	ID      string
	Version Version
	Digest  OpDigest // zero: unknown (recorded before digests were kept)
	Result  []byte
}

// Restore returns a store holding st, as if its commits had been applied:
// every path at its version, the global version, the LOG numbering and
// the op ids. History before st.Version is gone: a snapshot taken now
// sees st.Version. It checks st (paths, versions, duplicates) and refuses
// an inconsistent one.
func Restore(cfg Config, st State) (*Store, error) {
	s := New(cfg)
	s.hist.cur.Store(&epoch{ver: st.Version})
	s.hist.trimmed = st.Version
	for _, e := range st.Entries {
		if _, err := contract.Parse(string(e.Path)); err != nil {
			return nil, fmt.Errorf("cas: restore: %w", err)
		}
		if e.Version == 0 || e.Version > st.Version {
			return nil, fmt.Errorf("cas: restore: %s at version %d, store at %d", e.Path, e.Version, st.Version)
		}
		n := s.ensure(e.Path)
		if n.head.Load() != nil {
			return nil, fmt.Errorf("cas: restore: %s twice", e.Path)
		}
		n.head.Store(newRev(e.Version, e.Value, false, nil))
		s.live++
		stamp(n, e.Version)
	}
	for root, next := range st.Seqs {
		if _, err := contract.Parse(string(root)); err != nil {
			return nil, fmt.Errorf("cas: restore: LOG root: %w", err)
		}
		s.ensure(root).nextSeq = next
	}
	for _, o := range st.OpIDs {
		if o.Version == 0 || o.Version > st.Version || checkOpID(o.ID) != nil || o.ID == "" {
			return nil, fmt.Errorf("cas: restore: op id %q at version %d, store at %d", o.ID, o.Version, st.Version)
		}
		s.ids.put(o.ID, outcome{ver: o.Version, result: o.Result, digest: o.Digest})
	}
	return s, nil
}

// Export returns the store's state at its current version, what Restore
// takes back: for a backup taken while commits continue. It holds the
// store's lock while it walks the trie, so commits wait for the walk
// (about a tenth of a second per million paths); values are shared, not
// copied (they are never changed in place).
func (s *Store) Export() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Version: s.hist.version(), Entries: make([]Entry, 0, s.live), Seqs: map[contract.Path]uint64{}}
	var walk func(n *node)
	walk = func(n *node) {
		if r := n.head.Load(); r != nil && !r.deleted() {
			st.Entries = append(st.Entries, Entry{Path: n.path, Value: r.val, Version: r.ver})
		}
		if n.nextSeq != 0 {
			st.Seqs[n.path] = n.nextSeq
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(s.root)
	slices.SortFunc(st.Entries, func(a, b Entry) int { return strings.Compare(string(a.Path), string(b.Path)) })
	ring := s.ids.ring
	if len(ring) == s.ids.max { // full: ring[next] is the oldest
		ring = append(slices.Clone(ring[s.ids.next:]), ring[:s.ids.next]...)
	}
	for _, id := range ring {
		o := s.ids.byID[id]
		st.OpIDs = append(st.OpIDs, OpRecord{ID: id, Version: o.ver, Digest: o.digest, Result: o.result})
	}
	return st
}
