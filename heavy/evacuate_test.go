package heavy

import (
	"errors"
	"testing"

	"github.com/theus-run/theus/shm"
)

// committed writes an F32 tensor of n elements through a new lease of
// dispatch on s, claims it and commits it at path.
func committed(t *testing.T, z *Zone, s *Slab, dispatch uint64, path string, n int64) shm.Descriptor {
	t.Helper()
	l := z.Lease(s, dispatch)
	defer l.Close()
	d := tensor(t, l, n)
	_, ref, err := z.Claim(l, "inv", path, descJSON(t, d))
	if err != nil {
		t.Fatal(err)
	}
	z.Commit([]Ref{ref})
	return d
}

// fill allocates, for a dispatch whose lease stays open, all of s but
// leave bytes.
func fill(t *testing.T, z *Zone, s *Slab, dispatch uint64, leave int64) {
	t.Helper()
	n := s.alloc.Stats().LargestFree - leave
	if _, err := z.Lease(s, dispatch).Alloc(n); err != nil {
		t.Fatal(err)
	}
	if got := s.alloc.Stats().LargestFree; got != leave {
		t.Fatalf("slab %d: %d bytes free, want %d", s.ID(), got, leave)
	}
}

// TestMoveRefuses: Move takes only a committed tensor of a dead worker's
// slab, as its descriptor names it now, and only into a sealed live slab
// with room; a refused Move allocates nothing.
func TestMoveRefuses(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a, b := slab(t, z), slab(t, z)
	d := committed(t, z, a, 1, "heavy.t", 1024) // 4 KiB
	if _, _, err := z.Move(d, "heavy.t"); err == nil {
		t.Fatal("Move from a live worker's slab accepted")
	}
	if _, _, err := z.Move(shm.Descriptor{Slab: 99, Off: d.Off, Len: d.Len, Gen: d.Gen, DType: shm.F32, Shape: d.Shape}, "heavy.t"); err == nil {
		t.Fatal("Move from no slab accepted")
	}
	// An output of a dispatch still in flight when the worker died.
	l := z.Lease(a, 2)
	defer l.Close()
	inflight := tensor(t, l, 16)
	z.Retire(a)
	stale := d
	stale.Gen++
	if _, _, err := z.Move(stale, "heavy.t"); !errors.Is(err, shm.ErrStale) {
		t.Fatalf("Move of a stale descriptor: %v, want ErrStale", err)
	}
	if _, _, err := z.Move(inflight, "heavy.u"); !errors.Is(err, shm.ErrNotOwner) {
		t.Fatalf("Move of an uncommitted block: %v, want ErrNotOwner", err)
	}
	// b has one byte too few, c has room but is not sealed yet.
	fill(t, z, b, 1, d.Len-shm.BlockAlign)
	c, err := z.NewSlab()
	if err != nil {
		t.Fatal(err)
	}
	before := z.Stats()
	if _, _, err := z.Move(d, "heavy.t"); !errors.Is(err, shm.ErrArenaFull) {
		t.Fatalf("Move with no sealed live slab of room: %v, want ErrArenaFull", err)
	}
	if after := z.Stats(); after.Blocks != before.Blocks || after.InUse != before.InUse {
		t.Fatalf("refused Moves allocated: %+v, then %+v", before, after)
	}
	if err := z.Seal(c); err != nil {
		t.Fatal(err)
	}
	if nd, _, err := z.Move(d, "heavy.t"); err != nil || nd.Slab != c.ID() {
		t.Fatalf("Move once c is sealed: %+v, %v", nd, err)
	}
}

// TestMoveTarget: the copy goes to the live slab with the most room, even
// when a dead slab has more, and fits a slab with exactly its length free.
func TestMoveTarget(t *testing.T) {
	z := newZone(t, 16<<20, 4)
	a, b, c := slab(t, z), slab(t, z), slab(t, z)
	d := committed(t, z, a, 1, "heavy.t", 1024)
	z.Retire(a) // nearly empty: more room than any live slab
	fill(t, z, b, 1, 2<<20)
	fill(t, z, c, 1, 1<<20)
	nd, ref, err := z.Move(d, "heavy.t")
	if err != nil || nd.Slab != b.ID() || nd.Len != d.Len || nd.Gen == 0 {
		t.Fatalf("Move: %+v, %v; want it in slab %d", nd, err, b.ID())
	}
	z.Abort([]Ref{ref})

	fill(t, z, b, 2, d.Len)
	fill(t, z, c, 2, 0)
	if nd, _, err := z.Move(d, "heavy.t"); err != nil || nd.Slab != b.ID() {
		t.Fatalf("Move into exactly its length: %+v, %v", nd, err)
	}
}

// TestEvacuees lists the committed tensors of dead slabs only: not those
// of live slabs, not blocks still owned by a dispatch or an invocation,
// and not a block whose commit came after its invocation gave it up.
func TestEvacuees(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a, b := slab(t, z), slab(t, z)
	committed(t, z, b, 1, "heavy.live", 16)
	// Claimed, aborted, then committed late: nothing is committed.
	l := z.Lease(a, 1)
	_, ref, err := z.Claim(l, "inv", "heavy.gone", descJSON(t, tensor(t, l, 16)))
	if err != nil {
		t.Fatal(err)
	}
	z.Abort([]Ref{ref})
	z.Commit([]Ref{ref})
	// A new block where the aborted one was, claimed and not committed.
	l2 := z.Lease(a, 2)
	d2 := tensor(t, l2, 16)
	if d2.Off != ref.off {
		t.Fatalf("the new block is at %d, not %d: the test needs it in the same place", d2.Off, ref.off)
	}
	if _, _, err := z.Claim(l2, "inv2", "heavy.pending", descJSON(t, d2)); err != nil {
		t.Fatal(err)
	}
	d3 := committed(t, z, a, 3, "heavy.dead", 16)
	z.Retire(a)
	ev := z.Evacuees()
	if len(ev) != 1 || ev[0] != (Evacuee{Path: "heavy.dead", Slab: a.ID(), Off: d3.Off, Gen: d3.Gen}) {
		t.Fatalf("evacuees %+v, want only heavy.dead", ev)
	}
}
