package cas

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/theus-run/theus/contract"
)

// TestEpochsAreReused: in the steady state a commit takes an epoch that
// no one holds any more, whether a snapshot held the one before it
// (freed by horizon) or not (freed by advance): no new slab is made.
func TestEpochsAreReused(t *testing.T) {
	s := New(Config{})
	p := contract.MustParse("domain.k")
	d := Delta{{Path: p, Op: contract.OpSet, Value: []byte{1}}}
	ctx := context.Background()
	commit := func(snap Version) {
		t.Helper()
		if _, err := s.Commit(ctx, snap, nil, d, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, held := range []bool{true, false} {
		rmw := func() {
			if held {
				sn := s.Snapshot()
				commit(sn.Version())
				sn.Release()
			} else {
				commit(s.Version())
			}
		}
		for range 2 * epochSlab { // the steady state: an epoch held, one free
			rmw()
		}
		slab, used := &s.hist.slab[0], s.hist.used
		for range 10 * epochSlab {
			rmw()
		}
		if &s.hist.slab[0] != slab || s.hist.used != used {
			t.Fatalf("held %v: epochs taken from a slab in the steady state", held)
		}
		if n := len(s.hist.free); n == 0 || n > epochSlab {
			t.Fatalf("held %v: %d free epochs", held, n)
		}
	}
}

// TestEpochReuseUnderReaders: while one writer commits (each commit
// writes its own version at domain.v), readers take snapshots and read
// the version. A snapshot must read its own version's value however long
// it is held, and Version must never go back: an epoch reused while
// someone held it would show as a snapshot reading a newer value, and a
// read of a reused epoch's version without a hold as a race (-race).
func TestEpochReuseUnderReaders(t *testing.T) {
	s := New(Config{})
	p := contract.MustParse("domain.v")
	ctx := context.Background()
	const commits = 20_000
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for r := range 4 {
		wg.Go(func() {
			last := Version(0)
			for i := 0; !stop.Load(); i++ {
				if v := s.Version(); v < last {
					errs <- "Version went back"
					return
				} else {
					last = v
				}
				sn := s.Snapshot()
				for range 1 + (i+r)%4 { // held across a few commits
					e, ok := sn.Get(p)
					if sn.Version() > 0 && (!ok || binary.BigEndian.Uint64(e.Value) != uint64(sn.Version())) {
						errs <- "a snapshot read another version's value"
						sn.Release()
						return
					}
				}
				sn.Release()
			}
		})
	}
	var buf [8]byte
	for range commits {
		v := s.Version() + 1
		binary.BigEndian.PutUint64(buf[:], uint64(v))
		if _, err := s.Commit(ctx, v-1, nil, Delta{{Path: p, Op: contract.OpSet, Value: buf[:]}}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if st := s.Stats(); st.Snapshots != 0 {
		t.Fatalf("%d holds left after every reader released", st.Snapshots)
	}
}

// TestFreeEpochsBounded: however many epochs are released at once, at
// most epochSlab are kept for reuse; the rest go to the collector.
func TestFreeEpochsBounded(t *testing.T) {
	s := New(Config{})
	d := Delta{{Path: "domain.k", Op: contract.OpSet, Value: []byte{1}}}
	var held []*Snapshot
	for range 3 * epochSlab {
		held = append(held, s.Snapshot()) // one epoch held per commit
		if _, err := s.Commit(context.Background(), s.Version(), nil, d, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sn := range held {
		sn.Release()
	}
	s.Collect()
	if n, old := len(s.hist.free), len(s.hist.old); n != epochSlab || old != 0 {
		t.Fatalf("%d free epochs and %d old after %d were released, want %d and 0", n, old, 3*epochSlab, epochSlab)
	}
}
