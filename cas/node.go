package cas

import (
	"sync/atomic"

	"github.com/theus-run/theus/contract"
)

// node is one path in the trie. A node exists for every path that was ever
// written and every ancestor of one, until history trimming finds it deleted
// for good and childless.
//
// A commit changes a node under the store's lock. Snapshot.Get reads one
// without a lock: path and hash never change, head is atomic and the revs
// it links are immutable (see rev). children is guarded by Store.tree too.
type node struct {
	path     contract.Path
	hash     uint64 // the index's hash of path
	seg      string // last segment of path
	parent   *node
	children map[string]*node    // by segment; nil when none
	head     atomic.Pointer[rev] // newest first; nil for a path never written
	// subtree is the newest version written at this path or anywhere below
	// it: a subtree read from snapshot s conflicts iff subtree > s.
	subtree Version
	// nextSeq numbers the next append under this path (LOG roots).
	nextSeq uint64
	// private is the node of the outermost internal_* segment at or above
	// this one (the PRIVATE root stamping stops at), nil outside PRIVATE.
	// Fixed at creation, so a commit does not parse its paths again.
	private *node
	// watched: values dropped from here go to Config.Dropped.
	watched bool
	// gone: n has left the trie. It may still have an entry in
	// history.pending (it left with a child, its ancestors going with
	// it); that entry trims it but must not unlink it again, which would
	// remove a new node at the same path.
	gone bool
	// queued: n has an entry in history.pending. A node has at most one,
	// so a hot node written at every commit while a snapshot holds the
	// horizon back costs one walk of its revs per horizon advance, not
	// one per commit.
	queued bool
	// eager: n's entry is counted in history.eager (due): n was deleted
	// or is watched. Valid while queued.
	eager bool
}

// rev is one version of a path's value. Revs are immutable once linked,
// except prev, which trimming cuts under the store's lock. A reader walking
// without the lock never loads the prev that is cut: it holds a snapshot at
// or after the horizon, so it stops at the rev visible at the horizon, or
// at a newer one, and trimming cuts only that rev's prev.
type rev struct {
	ver  Version
	val  []byte // nil for a deletion; a set's is never nil (newRev)
	prev *rev
}

// deleted reports whether r is a deletion (a tombstone).
func (r *rev) deleted() bool { return r.val == nil }

// at returns the rev visible at version v, or nil.
func (n *node) at(v Version) *rev {
	r := n.head.Load()
	for r != nil && r.ver > v {
		r = r.prev
	}
	return r
}

// child returns the child for seg, creating it.
func (n *node) child(seg string, path contract.Path) *node {
	if c, ok := n.children[seg]; ok {
		return c
	}
	c := &node{path: path, seg: seg, parent: n, private: n.private}
	if c.private == nil {
		if _, ok := contract.Path(seg).PrivateRoot(); ok {
			c.private = c
		}
	}
	if n.children == nil {
		n.children = make(map[string]*node, 1)
	}
	n.children[seg] = c
	return c
}

// trim drops revs no snapshot at or after horizon can see: everything older
// than the newest rev at or below horizon.
func (n *node) trim(horizon Version, dropped func(contract.Path, []byte)) {
	r := n.at(horizon)
	if r == nil {
		return
	}
	if n.watched {
		for old := r.prev; old != nil; old = old.prev {
			if !old.deleted() {
				dropped(n.path, old.val)
			}
		}
	}
	r.prev = nil
}

// dead reports whether n can leave the trie: no snapshot at or after horizon
// sees a value at or below it, and no commit after horizon wrote there. A
// LOG root with appends keeps its numbering and stays.
func (n *node) dead(horizon Version) bool {
	hd := n.head.Load()
	return len(n.children) == 0 && n.nextSeq == 0 && n.subtree <= horizon &&
		(hd == nil || hd.deleted())
}
