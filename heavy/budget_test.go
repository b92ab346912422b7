package heavy

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/shm"
)

func TestConfigDefaults(t *testing.T) {
	for _, c := range []struct {
		cfg       Config
		slab      int64
		inlineMax int
	}{
		{Config{Size: 4 << 20}, 4 << 20, DefaultInlineMax},                            // one worker by default
		{Config{Size: 4 << 20, Workers: -3}, 4 << 20, DefaultInlineMax},               //
		{Config{Size: 10 << 20, Workers: 3}, 2 << 20, DefaultInlineMax},               // rounded down to shm.Align
		{Config{Size: 12 << 20, Workers: 3, InlineMax: 1}, 4 << 20, 1},                //
		{Config{Size: 4 << 20, Workers: 2, InlineMax: -1}, 2 << 20, DefaultInlineMax}, //
		{Config{}, 0, DefaultInlineMax},                                               // off
	} {
		z, err := New(c.cfg)
		if err != nil {
			t.Fatalf("%+v: %v", c.cfg, err)
		}
		if st := z.Stats(); st.SlabSize != c.slab || st.Size != c.cfg.Size || st.InlineMax != c.inlineMax || z.InlineMax() != c.inlineMax {
			t.Errorf("%+v: %+v, InlineMax %d; want slabs of %d, inline up to %d", c.cfg, st, z.InlineMax(), c.slab, c.inlineMax)
		}
		z.Close()
	}
	var none *Slab
	if none.ID() != 0 {
		t.Error("a nil slab has an id")
	}
}

// TestSlabBudgetWarning: live slabs never wait for room, but once dead
// workers' slabs hold more than Size the zone warns with each new slab.
func TestSlabBudgetWarning(t *testing.T) {
	var log bytes.Buffer
	z, err := New(Config{Size: 8 << 20, Workers: 2, Log: zerolog.New(&log).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	warnings := func() int { return strings.Count(log.String(), `"level":"warn"`) }
	a, b := slab(t, z), slab(t, z)
	committed(t, z, a, 1, "heavy.a", 16)
	committed(t, z, b, 1, "heavy.b", 16)
	z.Retire(a)
	z.Retire(b)
	c := slab(t, z)
	slab(t, z) // dead slabs hold Size exactly: live and dead fill twice Size
	if n := warnings(); n != 0 {
		t.Fatalf("%d warnings while dead slabs hold no more than Size: %s", n, log.String())
	}
	committed(t, z, c, 1, "heavy.c", 16)
	z.Retire(c)
	slab(t, z)
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings once dead slabs hold more than Size, want 1: %s", n, log.String())
	}
	if st := z.Stats(); st.Retired != 3 || st.Slabs != 2 || st.Held != 5*st.SlabSize {
		t.Fatalf("%+v", st)
	}
}

// spareDescriptors runs f with the soft limit on open descriptors set so
// that only spare more can be opened.
func spareDescriptors(t *testing.T, spare int, f func()) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	limit := uint64(0)
	for fd, free := 0, 0; ; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); errors.Is(err, unix.EBADF) {
			if free == spare {
				limit = uint64(fd)
				break
			}
			free++
		}
	}
	low := lim
	low.Cur = limit
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}

// openDescriptors counts the process's open descriptors.
func openDescriptors(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds) // one of them is ReadDir's own, each time
}

// TestNewSlabFailureHoldsNothing: a slab whose memfd or read-only reopen
// cannot be had is an error; its share of the budget is given back and
// its memfd closed.
func TestNewSlabFailureHoldsNothing(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	slab(t, z)
	for spare, step := range []string{"memfd_create", "the read-only reopen"} {
		before, fds := z.Stats(), openDescriptors(t)
		var err error
		spareDescriptors(t, spare, func() { _, err = z.NewSlab() })
		if !errors.Is(err, unix.EMFILE) {
			t.Fatalf("NewSlab with no descriptor for %s: %v, want EMFILE", step, err)
		}
		if after := z.Stats(); after != before {
			t.Fatalf("a failed NewSlab (%s) changed the zone: %+v, then %+v", step, before, after)
		}
		if n := openDescriptors(t); n != fds {
			t.Fatalf("a failed NewSlab (%s) left %d descriptors open, was %d", step, n, fds)
		}
	}
	slab(t, z)
	if st := z.Stats(); st.Slabs != 2 || st.Held != 2*st.SlabSize {
		t.Fatalf("%+v", st)
	}
}

// TestSealFailure: a slab that cannot be sealed is an error, is not shown
// to readers, and is no place to move a tensor to.
func TestSealFailure(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	d := committed(t, z, a, 1, "heavy.t", 16)
	z.Retire(a)
	s, err := z.NewSlab()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(s.region.File().Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL); err != nil {
		t.Fatal(err)
	}
	if err := z.Seal(s); err == nil {
		t.Fatal("Seal of a slab that refuses seals succeeded")
	}
	if _, _, err := z.Move(d, "heavy.t"); !errors.Is(err, shm.ErrArenaFull) {
		t.Fatalf("Move into an unsealed slab: %v", err)
	}
}

// TestBytes: an inline tensor's bytes are its own; an arena tensor's are
// its block's, through the supervisor's mapping; a descriptor of no live
// block is stale.
func TestBytes(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	inline := shm.Descriptor{DType: shm.U8, Shape: []int64{3}, Len: 3, Data: []byte{1, 2, 3}}
	if b, err := z.Bytes(inline); err != nil || !bytes.Equal(b, inline.Data) {
		t.Fatalf("inline: %v, %v", b, err)
	}
	d := committed(t, z, a, 1, "heavy.t", 10)
	b, err := z.Bytes(d)
	if err != nil || int64(len(b)) != d.Len {
		t.Fatalf("arena: %d bytes, %v; want %d", len(b), err, d.Len)
	}
	copy(b, "written")
	if again, _ := z.Bytes(d); string(again[:7]) != "written" {
		t.Fatalf("Bytes is not the block: %q", again[:7])
	}
	stale := d
	stale.Gen++
	noSlab := d
	noSlab.Slab = 99
	for name, bad := range map[string]shm.Descriptor{"stale generation": stale, "no slab": noSlab} {
		if _, err := z.Bytes(bad); !errors.Is(err, shm.ErrStale) {
			t.Errorf("%s: %v, want ErrStale", name, err)
		}
	}
}

// TestChangedSignals: Changed is called when there may be a tensor to
// move and room for it: a tensor committed in a dead slab, room made in a
// live slab, a new sealed slab; and only while a dead slab holds one.
func TestChangedSignals(t *testing.T) {
	var changed int
	z, err := New(Config{Size: 8 << 20, Workers: 2, Changed: func() { changed++ }})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	expect := func(step string, want int) {
		t.Helper()
		if changed != want {
			t.Fatalf("%s: Changed called %d times, want %d", step, changed, want)
		}
	}
	a, b := slab(t, z), slab(t, z)
	live := committed(t, z, a, 1, "heavy.live", 16)
	// b's worker dies with a result claimed but not committed.
	l := z.Lease(b, 1)
	_, ref, err := z.Claim(l, "inv", "heavy.late", descJSON(t, tensor(t, l, 16)))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	z.Retire(b)
	expect("a live slab holds a tensor, a dead one none", 0)
	z.Commit([]Ref{ref})
	expect("a tensor committed in a dead slab", 1)
	z.Drop(descJSON(t, live))
	expect("room made in a live slab", 2)
	slab(t, z)
	expect("a new sealed slab", 3)
	late := shm.Descriptor{Slab: b.ID(), Off: ref.off, Gen: ref.gen, Len: 64, DType: shm.F32, Shape: []int64{16}}
	z.Drop(descJSON(t, late))
	expect("the dead slab's last tensor dropped", 3)
	slab(t, z)
	expect("a new sealed slab, no dead slab left", 3)
	if st := z.Stats(); st.Retired != 0 || st.Blocks != 0 {
		t.Fatalf("%+v", st)
	}
}

// TestDropTwiceIsLogged: dropping a tensor that is already gone changes
// nothing and is logged as an error.
func TestDropTwiceIsLogged(t *testing.T) {
	var log bytes.Buffer
	z, err := New(Config{Size: 8 << 20, Workers: 2, Log: zerolog.New(&log).Level(zerolog.ErrorLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	a := slab(t, z)
	d := committed(t, z, a, 1, "heavy.t", 16)
	keep := committed(t, z, a, 2, "heavy.k", 16)
	z.Drop(descJSON(t, d))
	if log.Len() != 0 {
		t.Fatalf("first Drop logged %s", log.String())
	}
	z.Drop(descJSON(t, d))
	if !strings.Contains(log.String(), `"level":"error"`) {
		t.Fatalf("second Drop logged %q, want an error", log.String())
	}
	z.Drop([]byte("not a descriptor"))
	if st := z.Stats(); st.Blocks != 1 {
		t.Fatalf("%+v", st)
	}
	if b, err := z.Bytes(keep); err != nil || int64(len(b)) != keep.Len {
		t.Fatalf("the other tensor: %v", err)
	}
}

// TestLiveSlabOutlivesItsBlocks: a live worker's slab stays when its last
// block goes; Retire(nil) (a worker with no slab) is a no-op.
func TestLiveSlabOutlivesItsBlocks(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	d := committed(t, z, a, 1, "heavy.t", 16)
	z.Drop(descJSON(t, d))
	z.Retire(nil)
	if st := z.Stats(); st.Slabs != 1 || st.Retired != 0 || st.Blocks != 0 || st.Held != st.SlabSize || st.LargestFree != st.SlabSize-shm.BlockAlign {
		t.Fatalf("%+v", st)
	}
	committed(t, z, a, 2, "heavy.t", 16)
}
