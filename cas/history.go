package cas

import "sync/atomic"

// epoch counts the snapshots held at one version. Each commit publishes
// one (advance).
//
// Snapshot takes no lock: it loads the current epoch, adds a hold, and
// checks that the epoch is still current (else it drops the hold and
// retries). A commit stores the new epoch, then reads the old one's holds:
// if they are non-zero it keeps the old epoch in h.old. With sequentially
// consistent atomics one of the two sides sees the other's write, so every
// snapshot that succeeds is counted where horizon looks.
//
// An epoch that no one holds any more is reused (h.free) for a later
// version, so a commit allocates none. Its ver is rewritten then, so it
// is read only with a hold taken while the epoch was current (hold): a
// hold keeps the epoch out of h.free, and the write that reuses it
// follows the last Release's drop of its hold. A reader that loaded the
// epoch just before it left may still add a hold to it later, while it
// is free or current again; that hold is dropped when its check fails,
// or kept if the epoch is current again, with the version it has then.
type epoch struct {
	ver   Version
	holds atomic.Int64
}

// garbage is a node whose history a commit at ver made trimmable once every
// snapshot older than ver is gone.
type garbage struct {
	ver Version
	n   *node
}

// history tracks which versions snapshots still hold and which nodes have
// history to drop. Guarded by Store.mu except cur and epoch.holds.
type history struct {
	cur     atomic.Pointer[epoch]
	slab    []epoch   // epochs allocated together; slab[used:] are unused
	used    int       // an index, not a re-slice: no pointer write per commit
	old     []*epoch  // epochs with holds at commit time, oldest first
	free    []*epoch  // epochs no one holds, for reuse (at most epochSlab)
	pending []garbage // oldest first; a node at most once (node.queued)
	// trimmed is the newest horizon trimming has used: history older than
	// it may be gone, so a commit from an older snapshot cannot be checked.
	trimmed Version
	// lazy counts the commits since the last collect, and eager the
	// pending entries of deleted or watched paths (due).
	lazy  int
	eager int
}

// collectEvery is how many commits a collect's work is spread over
// when it can wait (due): a node written at every commit is trimmed once
// per collectEvery commits, keeping up to collectEvery revs more than
// the snapshots need.
const collectEvery = 8

// due reports whether a commit collects (the store's lock held). One that
// deleted a path, or replaced a value whose drop is watched, does (its
// entry in the queue is eager), and so does every commit while such an
// entry waits: a deleted path leaves the trie, and a watched value goes
// to Config.Dropped (a HEAVY block is freed), at the first commit after
// its entry in the queue comes within the horizon, as when every commit
// collected. (An entry put back in the queue goes back at the newest
// version, so a snapshot taken after the value was replaced can hold it
// too.) The rest is history that only costs memory: it is trimmed every
// collectEvery commits.
func (h *history) due() bool {
	h.lazy++
	if h.lazy < collectEvery && h.eager == 0 {
		return false
	}
	h.lazy = 0
	return true
}

// queue adds a node to the trim queue; eager when it is deleted or
// watched (due).
func (h *history) queue(n *node, v Version, eager bool) {
	n.queued = true
	h.pending = append(h.pending, garbage{ver: v, n: n})
	if eager {
		h.hurry(n)
	}
}

// hurry makes n's entry in the queue eager, if it is not already: n was
// deleted, or is watched, perhaps after a set queued it.
func (h *history) hurry(n *node) {
	if !n.eager {
		n.eager = true
		h.eager++
	}
}

// epochSlab is how many epochs one allocation holds, and how many free
// ones are kept for reuse. A held epoch keeps its slab (1 KiB) alive.
const epochSlab = 64

// advance publishes the epoch of version v (called with the store's lock).
func (h *history) advance(v Version) {
	var next *epoch
	if k := len(h.free); k > 0 {
		next = h.free[k-1]
		h.free[k-1] = nil
		h.free = h.free[:k-1]
	} else {
		if h.used == len(h.slab) {
			h.slab, h.used = make([]epoch, epochSlab), 0
		}
		next = &h.slab[h.used]
		h.used++
	}
	next.ver = v
	prev := h.cur.Swap(next)
	if prev.holds.Load() != 0 {
		h.old = append(h.old, prev)
	} else {
		h.retire(prev)
	}
}

// retire keeps e, which no one holds, for reuse.
func (h *history) retire(e *epoch) {
	if len(h.free) < epochSlab {
		h.free = append(h.free, e)
	}
}

// hold returns the current epoch with a hold added: the caller drops it.
func (h *history) hold() *epoch {
	for {
		e := h.cur.Load()
		e.holds.Add(1)
		if h.cur.Load() == e {
			return e
		}
		e.holds.Add(-1) // a commit moved on meanwhile: take the newer epoch
	}
}

// version returns the current version (the store's lock held: only its
// holder rewrites an epoch's ver).
func (h *history) version() Version { return h.cur.Load().ver }

// horizon returns the oldest version a live snapshot holds, or the current
// version when none is held, popping released epochs on the way.
func (h *history) horizon() Version {
	i := 0
	for i < len(h.old) && h.old[i].holds.Load() == 0 {
		h.retire(h.old[i])
		i++
	}
	h.old = popFront(h.old, i)
	if len(h.old) > 0 {
		return h.old[0].ver
	}
	return h.cur.Load().ver
}

// collect trims what no live snapshot can see. It is amortized over
// commits: a node is pending at most once, an entry is visited once, and
// a commit collects only when due.
// A node still holding revs newer than the horizon (written again since
// it was queued) goes back to the end of the queue, at the newest
// version, for the history those revs will make trimmable.
func (h *history) collect(s *Store) {
	if len(h.pending) == 0 {
		h.horizon() // pops the epochs released since: nothing else would
		return
	}
	hz := h.horizon()
	newest := h.cur.Load().ver // no older than any pending entry: requeuing at it keeps the order
	i := 0
	for ; i < len(h.pending) && h.pending[i].ver <= hz; i++ {
		n := h.pending[i].n
		if n.eager {
			n.eager = false
			h.eager--
		}
		n.queued = false
		n.trim(hz, s.dropped)
		s.unlink(n, hz)
		if hd := n.head.Load(); hd != nil && hd.ver > hz && (hd.prev != nil || hd.deleted()) {
			// newest > hz: the loop stops before the entries it appends.
			h.queue(n, newest, n.watched || hd.deleted())
		}
	}
	if i == 0 {
		return
	}
	if hz > h.trimmed {
		h.trimmed = hz
	}
	h.pending = popFront(h.pending, i)
}

// popFront drops the first i elements of q. It moves the rest to the front
// when they are no more than those dropped (so each element moves at most
// once per time it is behind as many dropped ones: amortized O(1)), which
// keeps the array instead of letting appends reallocate it. It moves and
// zeroes element by element: a commit pops one or two, and a loop of plain
// stores costs less there than the runtime's typed copy and clear.
func popFront[T any](q []T, i int) []T {
	if i == 0 {
		return q
	}
	var zero T
	rest := len(q) - i
	if rest <= i {
		for j := range rest {
			q[j] = q[i+j]
		}
		for j := rest; j < len(q); j++ {
			q[j] = zero
		}
		return q[:rest]
	}
	for j := range i {
		q[j] = zero
	}
	return q[i:]
}
