package shm

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// BlockAlign is the alignment of every block's offset and length: a cache
// line, and a multiple of every dtype's size.
const BlockAlign = 64

// Errors of the allocator. Each is wrapped with the details.
var (
	ErrArenaFull = errors.New("shm: arena full")
	ErrStale     = errors.New("shm: no such block (stale or forged descriptor)")
	ErrNotOwner  = errors.New("shm: block belongs to another owner")
)

// Block is an allocated range of a region.
type Block struct {
	Off   int64  // never 0: offset 0 means nil
	Len   int64  // a multiple of BlockAlign
	Gen   uint64 // unique per allocation: a freed and reused offset gets a new one
	Owner string // who may write it (a worker) until it is committed
}

type span struct{ off, len int64 }

// Allocator hands out blocks of a region by offset: best fit over a free
// list kept sorted and coalesced, so a long mix of sizes does not
// fragment the region into failure while free bytes remain contiguous.
// Its bookkeeping is in private memory; it is safe for concurrent use.
// Alloc and Free cost O(free spans).
type Allocator struct {
	mu    sync.Mutex
	size  int64
	free  []span           // sorted by off, no two adjacent
	used  map[int64]*Block // by offset
	gen   uint64
	inUse int64
}

// NewAllocator manages [BlockAlign, size) of a region (the first
// BlockAlign bytes are never handed out, so offset 0 can mean nil).
func NewAllocator(size int64) *Allocator {
	size -= size % BlockAlign
	a := &Allocator{size: size, used: map[int64]*Block{}}
	if size > BlockAlign {
		a.free = []span{{BlockAlign, size - BlockAlign}}
	}
	return a
}

// Alloc reserves n bytes (rounded up to BlockAlign) for owner.
func (a *Allocator) Alloc(n int64, owner string) (Block, error) {
	if n <= 0 {
		return Block{}, fmt.Errorf("shm: alloc %d bytes: want > 0", n)
	}
	n = (n + BlockAlign - 1) / BlockAlign * BlockAlign
	a.mu.Lock()
	defer a.mu.Unlock()
	best := -1
	for i, s := range a.free {
		if s.len >= n && (best < 0 || s.len < a.free[best].len) {
			best = i
			if s.len == n {
				break
			}
		}
	}
	if best < 0 {
		return Block{}, fmt.Errorf("%w: %d bytes wanted, largest free block %d, %d of %d bytes in use", ErrArenaFull, n, a.largestLocked(), a.inUse, a.size)
	}
	s := &a.free[best]
	b := &Block{Off: s.off, Len: n, Owner: owner}
	a.gen++
	b.Gen = a.gen
	s.off += n
	s.len -= n
	if s.len == 0 {
		a.free = slices.Delete(a.free, best, best+1)
	}
	a.used[b.Off] = b
	a.inUse += n
	return *b, nil
}

// Lookup returns the live block at off with generation gen.
func (a *Allocator) Lookup(off int64, gen uint64) (Block, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.used[off]
	if !ok || b.Gen != gen {
		return Block{}, fmt.Errorf("%w: offset %d generation %d", ErrStale, off, gen)
	}
	return *b, nil
}

// Block returns the live block at off.
func (a *Allocator) Block(off int64) (Block, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.used[off]
	if !ok {
		return Block{}, fmt.Errorf("%w: offset %d", ErrStale, off)
	}
	return *b, nil
}

// Blocks returns every live block, by offset.
func (a *Allocator) Blocks() []Block {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Block, 0, len(a.used))
	for _, b := range a.used {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(x, y Block) int { return cmp.Compare(x.Off, y.Off) })
	return out
}

// SetOwner hands a block to a new owner ("" once committed: no one may
// write it).
func (a *Allocator) SetOwner(off int64, gen uint64, owner string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.used[off]
	if !ok || b.Gen != gen {
		return fmt.Errorf("%w: offset %d generation %d", ErrStale, off, gen)
	}
	b.Owner = owner
	return nil
}

// Free returns the block at off with generation gen.
func (a *Allocator) Free(off int64, gen uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.used[off]
	if !ok || b.Gen != gen {
		return fmt.Errorf("%w: offset %d generation %d", ErrStale, off, gen)
	}
	a.releaseLocked(b)
	return nil
}

// FreeOwner returns every block owner still holds (a dead worker's
// uncommitted outputs) and how many bytes that freed.
func (a *Allocator) FreeOwner(owner string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var freed int64
	for _, b := range a.used {
		if b.Owner == owner {
			freed += b.Len
			a.releaseLocked(b)
		}
	}
	return freed
}

func (a *Allocator) releaseLocked(b *Block) {
	delete(a.used, b.Off)
	a.inUse -= b.Len
	i, _ := slices.BinarySearchFunc(a.free, b.Off, func(s span, off int64) int {
		switch {
		case s.off < off:
			return -1
		case s.off > off:
			return 1
		}
		return 0
	})
	a.free = slices.Insert(a.free, i, span{b.Off, b.Len})
	// Coalesce with the next span, then the previous one.
	if i+1 < len(a.free) && a.free[i].off+a.free[i].len == a.free[i+1].off {
		a.free[i].len += a.free[i+1].len
		a.free = slices.Delete(a.free, i+1, i+2)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].len == a.free[i].off {
		a.free[i-1].len += a.free[i].len
		a.free = slices.Delete(a.free, i, i+1)
	}
}

func (a *Allocator) largestLocked() int64 {
	var m int64
	for _, s := range a.free {
		m = max(m, s.len)
	}
	return m
}

// Stats describes the allocator's state.
type Stats struct {
	Size        int64 // bytes managed
	InUse       int64
	Blocks      int
	LargestFree int64
	FreeSpans   int
}

// Stats returns the allocator's state.
func (a *Allocator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return Stats{Size: a.size, InUse: a.inUse, Blocks: len(a.used), LargestFree: a.largestLocked(), FreeSpans: len(a.free)}
}
