package cas

import (
	"fmt"

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
	Result  []byte
}

// Restore returns a store holding st, as if its commits had been applied:
// every path at its version, the global version, the LOG numbering and
// the op ids. History before st.Version is gone: a snapshot taken now
// sees st.Version. It checks st (paths, versions, duplicates) and refuses
// an inconsistent one.
func Restore(cfg Config, st State) (*Store, error) {
	s := New(cfg)
	s.version = st.Version
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
		if n.head != nil {
			return nil, fmt.Errorf("cas: restore: %s twice", e.Path)
		}
		n.head = newRev(e.Version, e.Value, false, nil)
		s.live++
		for a := n; a != nil && a.subtree < e.Version; a = a.parent {
			a.subtree = e.Version
		}
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
		s.ids.put(o.ID, outcome{ver: o.Version, result: o.Result})
	}
	return s, nil
}
