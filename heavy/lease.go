package heavy

import (
	"errors"
	"fmt"
	"sync"

	"github.com/theus-run/theus/shm"
)

// Lease is the one owner of the blocks a dispatch allocates in its
// worker's slab, from the moment the dispatch is sent until its result is
// claimed or given up. Whoever holds the lease decides: the pool while the
// dispatch is in flight, then the receiver of the result. Close frees
// every block of the lease that no invocation claimed; it is idempotent,
// and an Alloc after it fails, both under the lease's lock, so no block
// can outlive its lease whatever order a result, a death, a timeout and a
// late Alloc happen in. A lease that allocated nothing (most dispatches)
// closes without the zone's lock, which every worker's dispatches share.
//
// Locks: a lease's, then the zone's; never the other way round.
//
// A nil *Lease is a dispatch with no slab (the zone is off): it allocates
// nothing and claims only inline tensors.
type Lease struct {
	z        *Zone
	slab     *Slab // nil: the worker has no slab
	dispatch uint64

	mu     sync.Mutex
	closed bool // Close ran: no Alloc or Claim after it
	used   bool // an Alloc succeeded: Close has blocks to free
}

// ErrLeaseClosed is returned by Alloc and Claim once the lease is closed:
// the dispatch is over and its blocks are gone.
var ErrLeaseClosed = errors.New("heavy: the dispatch's lease is closed")

// Lease opens the lease of the dispatch numbered dispatch on s (nil: the
// worker has no slab). Dispatch numbers must be unique per slab.
func (z *Zone) Lease(s *Slab, dispatch uint64) *Lease {
	return z.LeaseIn(new(Lease), s, dispatch)
}

// LeaseIn is Lease in l, storage the caller owns (a dispatch's own record:
// one allocation for both). l must not be in use: whoever holds the lease
// keeps l until the lease is closed and no longer referred to.
func (z *Zone) LeaseIn(l *Lease, s *Slab, dispatch uint64) *Lease {
	*l = Lease{z: z, slab: s, dispatch: dispatch}
	return l
}

// Alloc reserves n bytes (n > 0) of the lease's slab for an output of its
// dispatch. When the slab is full, the zone's Reclaim runs once (without
// the lock) and the allocation is tried again.
func (l *Lease) Alloc(n int64) (shm.Block, error) {
	if l == nil {
		return shm.Block{}, fmt.Errorf("%w: the HEAVY zone is off", shm.ErrArenaFull)
	}
	if l.slab == nil {
		return shm.Block{}, fmt.Errorf("%w: this worker has no slab (see the supervisor's log)", shm.ErrArenaFull)
	}
	b, err := l.alloc(n)
	if errors.Is(err, shm.ErrArenaFull) && l.z.cfg.Reclaim != nil {
		l.z.cfg.Reclaim()
		b, err = l.alloc(n)
	}
	if errors.Is(err, shm.ErrArenaFull) {
		return b, fmt.Errorf("%w (a worker's slab is --heavy-size/--workers = %d bytes)", err, l.z.slabSize)
	}
	return b, err
}

func (l *Lease) alloc(n int64) (shm.Block, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return shm.Block{}, ErrLeaseClosed
	}
	l.z.mu.Lock()
	defer l.z.mu.Unlock()
	if l.slab.retired {
		return shm.Block{}, fmt.Errorf("%w: slab %d is retired", shm.ErrArenaFull, l.slab.id)
	}
	b, err := l.slab.alloc.Alloc(n, dispatchOwner(l.dispatch))
	if err == nil {
		l.used = true
	}
	return b, err
}

func (l *Lease) slabID() uint32 {
	if l == nil {
		return 0
	}
	return l.slab.ID()
}

// Close frees the blocks the lease allocated and did not hand to an
// invocation, and refuses every later Alloc and Claim. It may be called
// any number of times, from any goroutine.
func (l *Lease) Close() {
	if l == nil || l.slab == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	if !l.used {
		return // nothing to free
	}
	z := l.z
	z.mu.Lock()
	defer z.mu.Unlock()
	s := l.slab
	if _, ok := z.slabs[s.id]; ok {
		s.alloc.FreeOwner(dispatchOwner(l.dispatch))
		z.closeIfDoneLocked(s)
	}
}
