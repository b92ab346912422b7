package heavy

import (
	"fmt"

	"github.com/theus-run/theus/shm"
)

// Ref names a block an invocation claimed: to commit or to free.
type Ref struct {
	slab uint32
	off  int64
	gen  uint64
	path string
}

// Claim validates value, which the dispatch of lease l wrote at a HEAVY path,
// and hands its block to the invocation inv, which then commits it or
// aborts it (Zone.Commit, Zone.Abort). An inline tensor only needs to be
// well formed (its Ref is zero). An arena tensor must be a block this
// lease allocated and has not handed out at another path; a tensor the
// worker did not write (one of its inputs, say) is refused. value is the
// supervisor's private copy of the worker's bytes.
func (z *Zone) Claim(l *Lease, inv, path string, value []byte) (shm.Descriptor, Ref, error) {
	d, err := shm.ParseDescriptor(value, z.cfg.InlineMax)
	if err != nil {
		return d, Ref{}, err
	}
	if d.Inline() {
		return d, Ref{}, nil
	}
	if l == nil || l.slab == nil || d.Slab != l.slab.id {
		return d, Ref{}, fmt.Errorf("%w: slab %d is not the worker's (%d): a process may only write tensors it allocated", shm.ErrNotOwner, d.Slab, l.slabID())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return d, Ref{}, ErrLeaseClosed
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	s := l.slab
	if _, ok := z.slabs[s.id]; !ok {
		return d, Ref{}, fmt.Errorf("%w: no slab %d", shm.ErrStale, s.id)
	}
	if _, err := d.Check(s.alloc, dispatchOwner(l.dispatch)); err != nil {
		return d, Ref{}, err
	}
	if err := s.alloc.SetOwner(d.Off, d.Gen, invocationOwner(inv)); err != nil {
		return d, Ref{}, err
	}
	return d, Ref{slab: s.id, off: d.Off, gen: d.Gen, path: path}, nil
}

// Abort frees blocks claimed by an invocation whose delta was not
// committed.
func (z *Zone) Abort(refs []Ref) {
	if len(refs) == 0 {
		return // most invocations claim nothing: no reason to take the zone's lock
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, r := range refs {
		if s, ok := z.slabs[r.slab]; ok {
			s.alloc.Free(r.off, r.gen)
			z.closeIfDoneLocked(s)
		}
	}
}

// Commit marks claimed blocks as committed at their paths: they now
// live until Drop.
func (z *Zone) Commit(refs []Ref) {
	if len(refs) == 0 {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, r := range refs {
		s, ok := z.slabs[r.slab]
		if !ok || s.alloc.SetOwner(r.off, r.gen, "") != nil {
			continue // dropped already
		}
		s.paths[r.off] = r.path
		if s.retired {
			z.changedLocked()
		}
	}
}

// Drop frees the block of a committed tensor value that no snapshot can
// see any more (cas.Config.Dropped). Values that are not arena tensors
// are ignored.
func (z *Zone) Drop(value []byte) {
	d, err := shm.ParseDescriptor(value, z.cfg.InlineMax)
	if err != nil || d.Inline() {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if s, ok := z.slabs[d.Slab]; ok {
		if err := s.alloc.Free(d.Off, d.Gen); err != nil {
			z.cfg.Log.Error().Err(err).Uint32("slab", d.Slab).Msg("dropping a committed tensor")
		}
		delete(s.paths, d.Off)
		z.closeIfDoneLocked(s)
		if !s.retired {
			z.changedLocked() // room in a live slab
		}
	}
}
