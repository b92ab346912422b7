package heavy

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/shm"
)

func TestLeaseCloseIsFinal(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	l := z.Lease(a, 7)
	d := tensor(t, l, 10)
	l.Close()
	l.Close() // twice is fine
	if st := z.Stats(); st.Blocks != 0 {
		t.Fatalf("after Close: %d blocks", st.Blocks)
	}
	if _, err := l.Alloc(64); !errors.Is(err, ErrLeaseClosed) {
		t.Errorf("Alloc after Close: %v, want ErrLeaseClosed", err)
	}
	if _, _, err := z.Claim(l, "inv", "heavy.x", descJSON(t, d)); !errors.Is(err, ErrLeaseClosed) {
		t.Errorf("Claim after Close: %v, want ErrLeaseClosed", err)
	}
	if st := z.Stats(); st.Blocks != 0 {
		t.Fatalf("a closed lease allocated: %d blocks", st.Blocks)
	}
	var none *Lease
	none.Close() // the zone is off: nothing to free
}

// TestUnusedLeaseCloseIsFinal: a lease that allocated nothing closes
// without the zone's lock, and is as closed as any other.
func TestUnusedLeaseCloseIsFinal(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	l := z.Lease(a, 3)
	l.Close()
	if _, err := l.Alloc(64); !errors.Is(err, ErrLeaseClosed) {
		t.Errorf("Alloc after Close: %v, want ErrLeaseClosed", err)
	}
	if st := z.Stats(); st.Blocks != 0 {
		t.Fatalf("a closed lease allocated: %d blocks", st.Blocks)
	}
	z.Abort(nil) // an invocation that claimed nothing
	z.Commit(nil)
	z.Retire(a) // no block: the slab closes at once
	if st := z.Stats(); st.Blocks != 0 {
		t.Fatalf("after Retire: %d blocks", st.Blocks)
	}
}

// TestNothingClaimedTakesNoZoneLock: what a noop execute does to the zone
// (close a lease that allocated nothing, commit and abort no refs)
// never waits for the zone's lock, which every worker's dispatches
// share. The lock is held throughout: a call that took it would hang.
func TestNothingClaimedTakesNoZoneLock(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	l := z.Lease(slab(t, z), 4)
	z.mu.Lock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		z.Abort(nil)
		z.Commit(nil)
		l.Close()
	}()
	select {
	case <-done:
		z.mu.Unlock()
	case <-time.After(10 * time.Second):
		z.mu.Unlock() // the zone's cleanup takes it
		<-done
		t.Fatal("closing an unused lease, or committing no refs, waited for the zone's lock")
	}
	if _, err := l.Alloc(64); !errors.Is(err, ErrLeaseClosed) {
		t.Errorf("Alloc after Close: %v, want ErrLeaseClosed", err)
	}
}

func TestLeaseRefusesEmptyAlloc(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	l := z.Lease(slab(t, z), 1)
	defer l.Close()
	for _, n := range []int64{0, -1, -1 << 62} {
		if _, err := l.Alloc(n); err == nil || errors.Is(err, shm.ErrArenaFull) {
			t.Errorf("Alloc(%d) = %v, want an error that is not arena_full", n, err)
		}
	}
}

// TestLeaseCloseRacesAlloc closes leases while their dispatches allocate,
// as a worker's Allocs race a timeout, a crash or a late result: whatever
// the order, nothing a lease allocated is left once it is closed.
func TestLeaseCloseRacesAlloc(t *testing.T) {
	z := newZone(t, 64<<20, 1)
	a := slab(t, z)
	for i := range 200 {
		l := z.Lease(a, uint64(i+1))
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 8 {
					if _, err := l.Alloc(128); err != nil && !errors.Is(err, ErrLeaseClosed) {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(l.Close)
		wg.Wait()
		l.Close()
		if st := z.Stats(); st.Blocks != 0 {
			t.Fatalf("round %d: %d blocks left after Close", i, st.Blocks)
		}
	}
}

// TestLeaseOnRetiredSlab: the worker died with the dispatch in flight;
// its slab closes once the lease is closed.
func TestLeaseOnRetiredSlab(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	l := z.Lease(a, 1)
	tensor(t, l, 100)
	z.Retire(a)
	if _, err := l.Alloc(64); !errors.Is(err, shm.ErrArenaFull) {
		t.Errorf("Alloc on a retired slab: %v", err)
	}
	if st := z.Stats(); st.Retired != 1 {
		t.Fatalf("retired slab closed with a block in it: %+v", st)
	}
	l.Close()
	if st := z.Stats(); st.Retired != 0 || st.Slabs != 0 {
		t.Fatalf("retired slab kept after its last lease closed: %+v", st)
	}
}

// TestLeaseWithoutSlab: a dispatch of a worker with no slab (or of a zone
// that is off) allocates nothing, claims only inline tensors, and closes
// as a no-op.
func TestLeaseWithoutSlab(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	arena := tensor(t, z.Lease(a, 1), 16)
	var off *Lease
	for name, l := range map[string]*Lease{"zone off": off, "no slab": z.Lease(nil, 2)} {
		if _, err := l.Alloc(64); !errors.Is(err, shm.ErrArenaFull) {
			t.Errorf("%s: Alloc = %v, want ErrArenaFull", name, err)
		}
		if _, _, err := z.Claim(l, "inv", "heavy.x", descJSON(t, arena)); !errors.Is(err, shm.ErrNotOwner) {
			t.Errorf("%s: Claim of an arena tensor = %v, want ErrNotOwner", name, err)
		}
		l.Close()
	}
	if st := z.Stats(); st.Blocks != 1 {
		t.Fatalf("%+v", st)
	}
}

// TestLeaseReclaim: when the slab is full, Alloc runs Reclaim once and
// tries again; it does not run it when there is room, and a slab still
// full after it is arena_full with the slab's size in the message.
func TestLeaseReclaim(t *testing.T) {
	var z *Zone
	var old *Lease
	reclaims := 0
	z, err := New(Config{Size: 8 << 20, Workers: 2, Reclaim: func() {
		reclaims++
		old.Close()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	a := slab(t, z)
	old = z.Lease(a, 1)
	if _, err := old.Alloc(3 << 20); err != nil {
		t.Fatal(err)
	}
	l := z.Lease(a, 2)
	if _, err := l.Alloc(512 << 10); err != nil || reclaims != 0 {
		t.Fatalf("Alloc with room: %v, %d reclaims", err, reclaims)
	}
	if _, err := l.Alloc(2 << 20); err != nil || reclaims != 1 {
		t.Fatalf("Alloc after a reclaim: %v, %d reclaims", err, reclaims)
	}
	if st := z.Stats(); st.Blocks != 2 || st.InUse != 2<<20+512<<10 {
		t.Fatalf("%+v", st)
	}
	_, err = l.Alloc(4 << 20)
	if !errors.Is(err, shm.ErrArenaFull) || reclaims != 2 {
		t.Fatalf("Alloc past the slab: %v, %d reclaims", err, reclaims)
	}
	if !strings.Contains(err.Error(), "--heavy-size/--workers = 4194304 bytes") {
		t.Fatalf("arena_full without the slab size: %v", err)
	}
}

// TestLeaseFullWithoutReclaim: with no Reclaim a full slab is simply
// arena_full.
func TestLeaseFullWithoutReclaim(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	l := z.Lease(slab(t, z), 1)
	defer l.Close()
	if _, err := l.Alloc(4<<20 + 1); !errors.Is(err, shm.ErrArenaFull) {
		t.Fatalf("Alloc past the slab: %v", err)
	}
}

// TestClaimedBlockOutlivesItsLease: a claimed block is the invocation's,
// whatever its name, even one that reads like a dispatch owner: closing
// the lease does not free it.
func TestClaimedBlockOutlivesItsLease(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	for i, inv := range []string{"d:1", "i:x", "inv"} {
		l := z.Lease(a, 1+uint64(i))
		d := tensor(t, l, 16)
		if _, _, err := z.Claim(l, inv, "heavy.x", descJSON(t, d)); err != nil {
			t.Fatal(err)
		}
		l.Close()
		if st := z.Stats(); st.Blocks != i+1 {
			t.Fatalf("invocation %q: %d blocks after its dispatch's lease closed, want %d", inv, st.Blocks, i+1)
		}
	}
}
