package cas

import "sync/atomic"

// epoch counts the snapshots held at one version. The current epoch is
// replaced when a commit lands while snapshots hold it, and reused
// otherwise, so a commit with no reader in sight allocates no epoch.
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
// history to drop. Guarded by Store.mu (exclusive) except epoch.holds.
type history struct {
	cur     *epoch
	old     []*epoch  // epochs with holds at commit time, oldest first
	pending []garbage // oldest first
	// trimmed is the newest horizon trimming has used: history older than
	// it may be gone, so a commit from an older snapshot cannot be checked.
	trimmed Version
}

// advance moves the current epoch to v (called with the write lock).
func (h *history) advance(v Version) {
	if h.cur.holds.Load() != 0 {
		h.old = append(h.old, h.cur)
		h.cur = &epoch{}
	}
	h.cur.ver = v
}

// horizon returns the oldest version a live snapshot holds, or the current
// version when none is held, popping released epochs on the way.
func (h *history) horizon() Version {
	i := 0
	for i < len(h.old) && h.old[i].holds.Load() == 0 {
		h.old[i] = nil
		i++
	}
	h.old = h.old[i:]
	if len(h.old) > 0 {
		return h.old[0].ver
	}
	return h.cur.ver
}

// collect trims what no live snapshot can see. It is amortized over
// commits: each pending entry is visited once.
func (h *history) collect(s *Store) {
	if len(h.pending) == 0 {
		return
	}
	hz := h.horizon()
	i := 0
	for ; i < len(h.pending) && h.pending[i].ver <= hz; i++ {
		n := h.pending[i].n
		h.pending[i] = garbage{}
		n.trim(hz)
		s.unlink(n, hz)
	}
	if i > 0 {
		h.pending = h.pending[i:]
		if hz > h.trimmed {
			h.trimmed = hz
		}
	}
	if cap(h.pending) > 1024 && len(h.pending) < cap(h.pending)/4 {
		h.pending = append([]garbage(nil), h.pending...)
	}
}
