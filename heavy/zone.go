package heavy

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
)

// Config describes a zone.
type Config struct {
	// Size is the budget of every live slab together (--heavy-size); 0
	// turns the zone off: every tensor then travels inline.
	Size int64
	// Workers is how many workers share the budget: each gets a slab of
	// Size/Workers bytes (rounded down to shm.Align), the largest tensor
	// it can write.
	Workers int
	// InlineMax is the size up to which a tensor travels inline, in the
	// DATA zone; default DefaultInlineMax.
	InlineMax int
	// Changed, when set, is called when a dead worker's slab holds
	// committed tensors that could move to a live slab (see Evacuees). It
	// runs under the zone's lock: it must only signal.
	Changed func()
	// Reclaim, when set, is called (without the zone's lock) when an
	// allocation finds no room, before it is tried once more: the
	// supervisor frees there the tensors that no snapshot sees any more
	// but that no commit has collected yet.
	Reclaim func()
	Log     zerolog.Logger
}

// DefaultInlineMax is the default inline limit (see docs/HEAVY.md for the
// measurement behind it).
const DefaultInlineMax = 2 << 10

// ErrNoSlab is returned by NewSlab when the zone is off. (A live worker
// always gets a slab otherwise: dead workers' slabs that still hold
// tensors are over the budget, with a warning, rather than refusing one.)
var ErrNoSlab = errors.New("heavy: no room for a slab")

// Zone is the HEAVY zone of one supervisor. It is safe for concurrent use.
type Zone struct {
	cfg      Config
	slabSize int64

	mu      sync.Mutex
	next    uint32
	slabs   map[uint32]*Slab
	readers map[*Reader]struct{}
	held    int64 // bytes of every slab's region
}

// Slab is one worker's region of the zone.
type Slab struct {
	id      uint32
	region  *shm.Region
	alloc   *shm.Allocator
	ro      *os.File         // read-only reopen, for readers
	paths   map[int64]string // committed blocks: offset -> path
	sealed  bool
	retired bool // its worker is dead: no new block; closed once empty
}

// ID names the slab in descriptors.
func (s *Slab) ID() uint32 {
	if s == nil {
		return 0
	}
	return s.id
}

// New returns a zone; no memory is reserved until the first slab.
func New(cfg Config) (*Zone, error) {
	if cfg.Size < 0 {
		return nil, fmt.Errorf("heavy: size %d: want >= 0", cfg.Size)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.InlineMax <= 0 {
		cfg.InlineMax = DefaultInlineMax
	}
	z := &Zone{cfg: cfg, slabs: map[uint32]*Slab{}, readers: map[*Reader]struct{}{}}
	z.slabSize = cfg.Size / int64(cfg.Workers) / shm.Align * shm.Align
	if cfg.Size > 0 && z.slabSize == 0 {
		return nil, fmt.Errorf("heavy: size %d for %d workers leaves less than %d bytes per worker", cfg.Size, cfg.Workers, shm.Align)
	}
	return z, nil
}

// InlineMax is the size up to which tensors travel inline.
func (z *Zone) InlineMax() int { return z.cfg.InlineMax }

// NewSlab creates a worker's slab, reserved and pre-faulted, not yet
// sealed or shown to readers. A live worker always gets one: Size bounds
// the live slabs. A dead worker's slab lives on while committed tensors
// are in it, until they are moved to live slabs (Move) or replaced; the
// zone logs a warning when dead slabs hold more than Size.
func (z *Zone) NewSlab() (*Slab, error) {
	if z.slabSize == 0 {
		return nil, fmt.Errorf("%w: the HEAVY zone is off (--heavy-size 0)", ErrNoSlab)
	}
	z.mu.Lock()
	if z.held+z.slabSize > 2*z.cfg.Size {
		z.cfg.Log.Warn().Int64("held", z.held).Int64("size", z.cfg.Size).Msg("dead workers' slabs still hold committed tensors that live slabs have no room for")
	}
	z.next++
	id := z.next
	z.held += z.slabSize
	z.mu.Unlock()
	r, err := shm.Create("theus-heavy-"+strconv.FormatUint(uint64(id), 10), z.slabSize)
	var ro *os.File
	if err == nil {
		if ro, err = r.ReadOnlyFile(); err != nil {
			r.Close()
		}
	}
	if err != nil {
		z.mu.Lock()
		z.held -= z.slabSize
		z.mu.Unlock()
		return nil, fmt.Errorf("heavy: slab %d of %d bytes (--heavy-size/workers; lower --heavy-size to use less memory): %w", id, z.slabSize, err)
	}
	s := &Slab{id: id, region: r, alloc: shm.NewAllocator(r.Size()), ro: ro, paths: map[int64]string{}}
	z.mu.Lock()
	z.slabs[id] = s
	z.mu.Unlock()
	z.cfg.Log.Debug().Uint32("slab", id).Int64("bytes", r.Size()).Dur("reserve", r.Prepared.Reserve).Dur("populate", r.Prepared.Populate).Bool("huge_pages", r.Prepared.Huge).Msg("slab ready")
	return s, nil
}

// Seal forbids every new writable mapping of s (its worker has mapped it)
// and sends its read-only descriptor to every reader.
func (z *Zone) Seal(s *Slab) error {
	if err := s.region.SealFutureWrite(); err != nil {
		return fmt.Errorf("heavy: slab %d: %w", s.id, err)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	s.sealed = true
	for r := range z.readers {
		if r.own != s {
			r.send(protocol.SlabMapRO, s, s.ro)
		}
	}
	z.changedLocked() // room for the tensors of dead workers' slabs
	return nil
}

// changedLocked calls Config.Changed if a retired slab holds tensors.
func (z *Zone) changedLocked() {
	if z.cfg.Changed == nil {
		return
	}
	for _, s := range z.slabs {
		if s.retired && len(s.paths) > 0 {
			z.cfg.Changed()
			return
		}
	}
}

// Retire is called when s's worker is dead: s gives no new block and is
// closed once no block lives in it. The blocks of its unfinished
// dispatches are freed as each dispatch ends (Release); a result that
// arrived before the death can still be claimed and committed.
func (z *Zone) Retire(s *Slab) {
	if s == nil {
		return
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	s.retired = true
	z.closeIfDoneLocked(s)
	z.changedLocked()
}

func (z *Zone) closeIfDoneLocked(s *Slab) {
	if !s.retired || s.alloc.Stats().Blocks > 0 {
		return
	}
	if _, ok := z.slabs[s.id]; !ok {
		return
	}
	delete(z.slabs, s.id)
	z.held -= s.region.Size()
	for r := range z.readers {
		if r.own != s {
			r.send(protocol.SlabUnmap, s, nil)
		}
	}
	s.ro.Close()
	s.region.Close()
}

// Close releases every slab; the zone must not be used after.
func (z *Zone) Close() {
	z.mu.Lock()
	defer z.mu.Unlock()
	for id, s := range z.slabs {
		s.ro.Close()
		s.region.Close()
		delete(z.slabs, id)
	}
	z.held = 0
}

// Owners of blocks: a block is written by a dispatch, claimed by an
// invocation once the dispatch returns it, and committed (owner "").
const (
	ownerDispatch   = "d:"
	ownerInvocation = "i:"
)

func dispatchOwner(dispatch uint64) string {
	return ownerDispatch + strconv.FormatUint(dispatch, 10)
}

// Bytes returns the bytes of a committed tensor, read through the
// supervisor's own mapping (for checksums and tests). The caller must hold
// a snapshot that sees d while it uses them: that keeps the block, and its
// slab, alive.
func (z *Zone) Bytes(d shm.Descriptor) ([]byte, error) {
	if d.Inline() {
		return d.Data, nil
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	s, ok := z.slabs[d.Slab]
	if !ok {
		return nil, fmt.Errorf("%w: no slab %d", shm.ErrStale, d.Slab)
	}
	if _, err := d.Check(s.alloc, "*"); err != nil {
		return nil, err
	}
	return s.region.Bytes(d.Off, d.Len), nil
}

// Stats describes the zone.
type Stats struct {
	Size, SlabSize, Held, InUse, LargestFree int64
	Slabs, Retired, Blocks                   int
	HugeKiB                                  int64
	InlineMax                                int
}

// Stats returns the zone's state.
func (z *Zone) Stats() Stats {
	z.mu.Lock()
	defer z.mu.Unlock()
	st := Stats{Size: z.cfg.Size, SlabSize: z.slabSize, Held: z.held, InlineMax: z.cfg.InlineMax}
	for _, s := range z.slabs {
		a := s.alloc.Stats()
		st.InUse += a.InUse
		st.Blocks += a.Blocks
		st.HugeKiB += s.region.Prepared.HugeKiB
		if s.retired {
			st.Retired++
			continue
		}
		st.Slabs++
		st.LargestFree = max(st.LargestFree, a.LargestFree)
	}
	return st
}

// SlabStats is one slab: its id, the bytes in its blocks, and whether it
// is retired (its worker died; it holds committed tensors until they
// are freed or moved).
type SlabStats struct {
	ID      uint32
	InUse   int64
	Retired bool
}

// Slabs describes every slab, live and retired, by id.
func (z *Zone) Slabs() []SlabStats {
	z.mu.Lock()
	out := make([]SlabStats, 0, len(z.slabs))
	for _, s := range z.slabs {
		out = append(out, SlabStats{ID: s.id, InUse: s.alloc.Stats().InUse, Retired: s.retired})
	}
	z.mu.Unlock()
	slices.SortFunc(out, func(a, b SlabStats) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Describe lists every live block, by slab, with its owner ("" once
// committed) and path: for diagnostics.
func (z *Zone) Describe() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []string
	for _, s := range z.slabs {
		for _, b := range s.alloc.Blocks() {
			out = append(out, fmt.Sprintf("slab %d (retired %v) block %d+%d gen %d owner %q path %q", s.id, s.retired, b.Off, b.Len, b.Gen, b.Owner, s.paths[b.Off]))
		}
	}
	return out
}

// invocationOwner names the owner of the blocks inv claimed.
func invocationOwner(inv string) string {
	if strings.HasPrefix(inv, ownerInvocation) {
		return inv
	}
	return ownerInvocation + inv
}
