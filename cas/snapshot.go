package cas

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/theus-run/theus/contract"
)

// Snapshot is an immutable view of the store at one version. Taking one does
// not copy anything; it holds the history it needs until Release. A
// Snapshot is safe for concurrent use; using it after Release panics. A Get
// or Subtree still running when another goroutine calls Release is a use
// after Release too (the history it walks may be dropped under it, and the
// race detector says so): release a snapshot once its readers are done.
type Snapshot struct {
	s *Store
	e *epoch
	v Version
	// takes is the count of Releases when the snapshot was last taken,
	// and ended counts its Releases: it is released while they differ.
	// Only take writes takes, and take never runs concurrently with
	// another use, so taking a released snapshot again costs no locked
	// instruction; the CAS on ended makes a second Release, concurrent
	// or not, a no-op. (A zero Snapshot is not released, as before.)
	takes   uint64
	ended   atomic.Uint64
	frozen  []Entry // a Frozen snapshot's values (s is nil then)
	release func()  // FrozenHeld's: called by the first Release
}

// Entry is a path's value as seen by a snapshot.
type Entry struct {
	Path    contract.Path
	Value   []byte  // shared with the store: never modify it
	Version Version // the commit that wrote it
}

// Snapshot returns a view of the newest version. Call Release when done.
// It takes no lock and copies nothing.
func (s *Store) Snapshot() *Snapshot {
	sn := &Snapshot{s: s}
	sn.take()
	return sn
}

// Take makes sn view the newest version, as Snapshot does, in a Snapshot
// the caller keeps (inside a request's own state: no allocation). sn must
// be zero or a released snapshot of a Store, never a Frozen one; Take of
// a held snapshot panics, as does Take of a Frozen one with entries or a
// release function (a Frozen one with neither looks zero here). Call
// Release when done.
func (s *Store) Take(sn *Snapshot) {
	if sn.frozen != nil || sn.release != nil || (sn.s != nil && !sn.isReleased()) {
		panic("cas: Take of a held or Frozen Snapshot")
	}
	sn.s = s
	sn.take()
}

// Renew drops the snapshot's hold, if it still has one, and makes it view
// the newest version. It reuses the Snapshot, so a loop that snapshots
// again and again allocates nothing. It must not run concurrently with
// other uses of sn.
func (sn *Snapshot) Renew() {
	if sn.s == nil {
		panic("cas: Renew of a Frozen snapshot")
	}
	sn.Release()
	sn.take()
}

func (sn *Snapshot) take() {
	s := sn.s
	if s.arb != nil && s.arb.Active() {
		// A ticket is held. Its holder's snapshot must see every commit
		// that passed the VIP gate before the grant; those publish their
		// epoch before they unlock, so waiting out the writer is enough.
		// (Found by TestHotKeyBoundedAttempts under load: without this, a
		// holder could read the epoch before such a commit and lose.)
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	e := s.hist.hold()
	sn.e, sn.v = e, e.ver
	sn.takes = sn.ended.Load()
}

// Version is the version the snapshot sees.
func (sn *Snapshot) Version() Version { return sn.v }

// Release lets the store drop history this snapshot held. It is safe to
// call more than once.
func (sn *Snapshot) Release() {
	// The load first: a second Release (Renew after Release, a deferred
	// Release after an explicit one) then takes no locked instruction.
	t := sn.takes
	if sn.ended.Load() == t && sn.ended.CompareAndSwap(t, t+1) {
		if sn.e != nil {
			sn.e.holds.Add(-1)
		}
		if sn.release != nil {
			sn.release()
		}
	}
}

// isReleased reports whether Release ended the snapshot's last take.
func (sn *Snapshot) isReleased() bool { return sn.ended.Load() != sn.takes }

func (sn *Snapshot) check() {
	if sn.isReleased() {
		panic("cas: use of a released Snapshot")
	}
}

// Get returns the value at exactly p and the version that wrote it, and
// false if p holds no value at this snapshot. It takes no lock: commits
// neither wait for it nor make it wait.
func (sn *Snapshot) Get(p contract.Path) (Entry, bool) {
	sn.check()
	if sn.s == nil {
		return sn.frozenGet(p)
	}
	n := sn.s.index.get(p)
	if n == nil {
		return Entry{}, false
	}
	r := n.at(sn.v)
	if r == nil || r.deleted() {
		return Entry{}, false
	}
	return Entry{Path: p, Value: r.val, Version: r.ver}, true
}

// Subtree returns every value at p or below it, sorted by path. It holds
// the trie's shape (Store.tree) while it walks: commits that add or remove
// a path wait for it, the others do not.
func (sn *Snapshot) Subtree(p contract.Path) []Entry {
	sn.check()
	if sn.s == nil {
		return sn.frozenSubtree(p)
	}
	var out []Entry
	sn.s.tree.RLock()
	if n := sn.s.index.get(p); n != nil {
		out = sn.collect(n, out)
	}
	sn.s.tree.RUnlock()
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(string(a.Path), string(b.Path)) })
	return out
}

func (sn *Snapshot) collect(n *node, out []Entry) []Entry {
	if r := n.at(sn.v); r != nil && !r.deleted() {
		out = append(out, Entry{Path: n.path, Value: r.val, Version: r.ver})
	}
	for _, c := range n.children {
		out = sn.collect(c, out)
	}
	return out
}
