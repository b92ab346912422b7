package cas

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/theus-run/theus/contract"
)

// Snapshot is an immutable view of the store at one version. Taking one does
// not copy anything; it holds the history it needs until Release. A
// Snapshot is safe for concurrent use; using it after Release panics.
type Snapshot struct {
	s        *Store
	e        *epoch
	v        Version
	released atomic.Bool
}

// Entry is a path's value as seen by a snapshot.
type Entry struct {
	Path    contract.Path
	Value   []byte  // shared with the store: never modify it
	Version Version // the commit that wrote it
}

// Snapshot returns a view of the newest version. Call Release when done.
func (s *Store) Snapshot() *Snapshot {
	s.mu.RLock()
	e := s.hist.cur
	e.holds.Add(1)
	v := s.version
	s.mu.RUnlock()
	return &Snapshot{s: s, e: e, v: v}
}

// Version is the version the snapshot sees.
func (sn *Snapshot) Version() Version { return sn.v }

// Release lets the store drop history this snapshot held. It is safe to
// call more than once.
func (sn *Snapshot) Release() {
	if sn.released.CompareAndSwap(false, true) {
		sn.e.holds.Add(-1)
	}
}

func (sn *Snapshot) check() {
	if sn.released.Load() {
		panic("cas: use of a released Snapshot")
	}
}

// Get returns the value at exactly p and the version that wrote it, and
// false if p holds no value at this snapshot.
func (sn *Snapshot) Get(p contract.Path) (Entry, bool) {
	sn.check()
	sn.s.mu.RLock()
	defer sn.s.mu.RUnlock()
	n, ok := sn.s.index[p]
	if !ok {
		return Entry{}, false
	}
	r := n.at(sn.v)
	if r == nil || r.deleted {
		return Entry{}, false
	}
	return Entry{Path: p, Value: r.val, Version: r.ver}, true
}

// Subtree returns every value at p or below it, sorted by path.
func (sn *Snapshot) Subtree(p contract.Path) []Entry {
	sn.check()
	sn.s.mu.RLock()
	n, ok := sn.s.index[p]
	var out []Entry
	if ok {
		out = sn.collect(n, out)
	}
	sn.s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(string(a.Path), string(b.Path)) })
	return out
}

func (sn *Snapshot) collect(n *node, out []Entry) []Entry {
	if r := n.at(sn.v); r != nil && !r.deleted {
		out = append(out, Entry{Path: n.path, Value: r.val, Version: r.ver})
	}
	for _, c := range n.children {
		out = sn.collect(c, out)
	}
	return out
}
