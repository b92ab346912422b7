package cas

import (
	"hash/maphash"
	"sync/atomic"

	"github.com/theus-run/theus/contract"
)

// pathIndex finds a path's node. One writer at a time (a commit, under the
// store's lock) adds and removes entries; readers look up without any lock,
// while it writes. It is an extendible hash table: a directory of segments
// picked by the hash's top bits, each segment a small open-addressed table
// probed by its low bits. A segment that fills is split in two, or rebuilt
// without its tombstones, and a full directory is doubled; so one insert
// copies at most one segment and the directory, never the whole index.
//
// A reader sees a consistent table because the writer never changes a
// published segment but for storing an entry or a tombstone into one slot:
// a split or a rebuild fills new segments first and then swaps them into
// the directory, and a doubled directory is built whole before it is
// published. A reader that loaded the segment being replaced finds every
// entry that was in it, and an entry inserted after its load belongs to a
// commit newer than any snapshot it serves (Snapshot.Get reads only
// versions published before it started).
type pathIndex struct {
	seed maphash.Seed
	dir  atomic.Pointer[directory]
}

// directory lists the segments by the top depth bits of a path's hash.
// Several consecutive entries share a segment whose depth is lower.
type directory struct {
	depth uint
	segs  []atomic.Pointer[segment]
}

// segment holds the entries whose hashes share its top depth bits.
type segment struct {
	depth uint
	slots []atomic.Pointer[node] // a power of two; nil ends a probe
	// live counts entries, used entries and tombstones; both the
	// writer's only. used stays below len(slots) * 3/4, so a probe
	// always ends at a nil slot.
	live, used int
}

// segSlots is a segment's size: 2 KiB of slots, which a split or a rebuild
// copies under the store's lock.
const segSlots = 256

// maxDirDepth bounds the directory at 2^24 entries (128 MiB), about 4
// billion paths; past it a full segment grows instead of splitting. A
// variable for the tests, which lower it to reach that branch.
var maxDirDepth uint = 24

// tombstone marks a removed entry; a probe goes on past it.
var tombstone = &node{}

func newPathIndex() *pathIndex {
	x := &pathIndex{seed: maphash.MakeSeed()}
	d := &directory{segs: make([]atomic.Pointer[segment], 1)}
	d.segs[0].Store(newSegment(0, segSlots))
	x.dir.Store(d)
	return x
}

func newSegment(depth uint, slots int) *segment {
	return &segment{depth: depth, slots: make([]atomic.Pointer[node], slots)}
}

func (x *pathIndex) hash(p contract.Path) uint64 {
	return maphash.String(x.seed, string(p))
}

// segmentOf returns the directory entry for hash h.
func (d *directory) segmentOf(h uint64) int {
	if d.depth == 0 {
		return 0
	}
	return int(h >> (64 - d.depth))
}

// get returns p's node, or nil. It takes no lock.
func (x *pathIndex) get(p contract.Path) *node {
	h := x.hash(p)
	d := x.dir.Load()
	s := d.segs[d.segmentOf(h)].Load()
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		n := s.slots[i].Load()
		if n == nil {
			return nil
		}
		if n.hash == h && n.path == p && n != tombstone {
			return n
		}
	}
}

// put adds n, which is not in the index, under its path (writer only). It
// sets n.hash.
func (x *pathIndex) put(n *node) {
	n.hash = x.hash(n.path)
	for {
		d := x.dir.Load()
		s := d.segs[d.segmentOf(n.hash)].Load()
		if (s.used+1)*4 <= len(s.slots)*3 {
			s.insert(n)
			return
		}
		x.grow(d, n.hash, s)
	}
}

// insert stores n in s's first free slot of its probe (writer only; s
// has one).
func (s *segment) insert(n *node) {
	mask := uint64(len(s.slots) - 1)
	i := n.hash & mask
	for s.slots[i].Load() != nil {
		i = (i + 1) & mask
	}
	s.slots[i].Store(n)
	s.live++
	s.used++
}

// grow makes room in s, the segment for hash h: a segment with tombstones
// to spare is rebuilt without them, a full one is split in two (the
// directory doubled first when s uses all of its bits).
func (x *pathIndex) grow(d *directory, h uint64, s *segment) {
	switch {
	case (s.live+1)*2 <= len(s.slots):
		d.point(h, s.depth, s.rebuilt(s.depth, len(s.slots), 0, 0))
	case s.depth == maxDirDepth:
		d.point(h, s.depth, s.rebuilt(s.depth, 2*len(s.slots), 0, 0))
	default:
		if s.depth == d.depth {
			d = x.double(d)
		}
		bit := uint64(1) << (63 - s.depth) // the next bit after s's
		d.point(h&^bit, s.depth+1, s.rebuilt(s.depth+1, len(s.slots), bit, 0))
		d.point(h|bit, s.depth+1, s.rebuilt(s.depth+1, len(s.slots), bit, bit))
	}
}

// rebuilt returns a new segment of the given depth and size holding s's
// entries whose hash&mask is want.
func (s *segment) rebuilt(depth uint, slots int, mask, want uint64) *segment {
	r := newSegment(depth, slots)
	for i := range s.slots {
		if n := s.slots[i].Load(); n != nil && n != tombstone && n.hash&mask == want {
			r.insert(n)
		}
	}
	return r
}

// point points at s every directory entry whose top depth bits are h's
// (2^(d.depth-depth) consecutive entries).
func (d *directory) point(h uint64, depth uint, s *segment) {
	span := 1 << (d.depth - depth)
	first := d.segmentOf(h) &^ (span - 1)
	for j := first; j < first+span; j++ {
		d.segs[j].Store(s)
	}
}

// double publishes a directory with one more bit, each entry twice.
func (x *pathIndex) double(d *directory) *directory {
	nd := &directory{depth: d.depth + 1, segs: make([]atomic.Pointer[segment], 2*len(d.segs))}
	for j := range d.segs {
		s := d.segs[j].Load()
		nd.segs[2*j].Store(s)
		nd.segs[2*j+1].Store(s)
	}
	x.dir.Store(nd)
	return nd
}

// remove drops n, which is in the index (writer only).
func (x *pathIndex) remove(n *node) {
	d := x.dir.Load()
	s := d.segs[d.segmentOf(n.hash)].Load()
	mask := uint64(len(s.slots) - 1)
	for i := n.hash & mask; ; i = (i + 1) & mask {
		switch s.slots[i].Load() {
		case n:
			s.slots[i].Store(tombstone)
			s.live--
			return
		case nil:
			panic("cas: index: removing a path it does not hold")
		}
	}
}
