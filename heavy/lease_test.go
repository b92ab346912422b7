package heavy

import (
	"errors"
	"sync"
	"testing"

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
