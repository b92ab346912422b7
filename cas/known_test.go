package cas

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/theus-run/theus/contract"
)

// TestKnownNodeGoneBeforeTheLock: Commit looks up the nodes of the paths it
// writes before it takes the lock. A node that another commit's trimming
// takes out of the trie meanwhile must not receive the write: the write
// goes to the path's node in the trie, where Get finds it.
func TestKnownNodeGoneBeforeTheLock(t *testing.T) {
	s := New(Config{})
	ctx := context.Background()
	p := contract.Path("domain.a.b")
	set := Delta{{Path: p, Op: contract.OpSet, Value: []byte{1}}}
	if _, err := s.Commit(ctx, s.Version(), nil, set, Options{}); err != nil {
		t.Fatal(err)
	}
	stale := s.index.get(p) // what a Commit looked up before its lock
	del := Delta{{Path: p, Op: contract.OpDelete}}
	if _, err := s.Commit(ctx, s.Version(), nil, del, Options{}); err != nil {
		t.Fatal(err)
	}
	if !stale.gone || s.index.get(p) != nil {
		t.Fatalf("the deleted path's node is still in the trie (gone %v)", stale.gone)
	}

	// The commit that looked it up now takes the lock and applies.
	s.mu.Lock()
	v := s.Version() + 1
	s.apply(v, Delta{{Path: p, Op: contract.OpSet, Value: []byte{2}}}, []*node{stale})
	s.hist.advance(v)
	s.hist.collect(s)
	s.mu.Unlock()

	sn := s.Snapshot()
	defer sn.Release()
	if e, ok := sn.Get(p); !ok || string(e.Value) != "\x02" || e.Version != v {
		t.Fatalf("Get(%s) = %+v, %v after a write through a stale node, want the value 2 at %d", p, e, ok, v)
	}
	if got := sn.Subtree("domain"); len(got) != 1 || got[0].Path != p {
		t.Fatalf("Subtree(domain) = %+v, want %s alone", got, p)
	}
}

// TestKnownPathsAreNotParsedAgain: a write to a path the store holds skips
// the parse, and every other check still runs; a new path is parsed.
func TestKnownPathsAreNotParsedAgain(t *testing.T) {
	s := New(Config{})
	ctx := context.Background()
	p := contract.Path("domain.k")
	if _, err := s.Commit(ctx, 0, nil, Delta{{Path: p, Op: contract.OpSet, Value: []byte{1}}}, Options{}); err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]Delta{
		"a new invalid path":      {{Path: "domain..x", Op: contract.OpSet}},
		"a known path twice":      {{Path: p, Op: contract.OpSet}, {Path: p, Op: contract.OpDelete}},
		"a known path, bad op":    {{Path: p, Op: contract.Op(99)}},
		"a known path, del+value": {{Path: p, Op: contract.OpDelete, Value: []byte{1}}},
	} {
		if _, err := s.Commit(ctx, s.Version(), nil, d, Options{}); !errors.Is(err, ErrInvalidDelta) || s.Version() != 1 {
			t.Errorf("%s: %v at version %d, want ErrInvalidDelta at 1", name, err, s.Version())
		}
	}
}

// TestConcurrentReleaseDropsOneHold: two Releases of one snapshot racing
// each other drop its hold once: another snapshot of the same epoch keeps it.
// And a Renew after them holds again, once.
func TestConcurrentReleaseDropsOneHold(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two Releases running at once")
	}
	s := New(Config{})
	other := s.Snapshot()
	defer other.Release()
	sn := s.Snapshot()
	for range 2000 {
		var ready, start atomic.Int32
		done := make(chan struct{}, 2)
		for range 2 {
			go func() {
				if ready.Add(1) == 2 {
					start.Store(1)
				}
				for start.Load() == 0 { // spin: both Releases start together
				}
				sn.Release()
				done <- struct{}{}
			}()
		}
		<-done
		<-done
		if h := other.e.holds.Load(); h != 1 {
			t.Fatalf("after 4 racing Releases the epoch has %d holds, want 1 (the other snapshot's)", h)
		}
		sn.Renew()
		if h := other.e.holds.Load(); h != 2 || sn.e != other.e {
			t.Fatalf("after Renew the epoch has %d holds, want 2", h)
		}
	}
	sn.Release()
}

// TestZeroSnapshot: a zero Snapshot reads as empty until its Release, as
// it did with a released flag; Take makes it view a store.
func TestZeroSnapshot(t *testing.T) {
	var sn Snapshot
	if _, ok := sn.Get("domain.a"); ok {
		t.Fatal("a zero snapshot holds a value")
	}
	if got := sn.Subtree("domain"); len(got) != 0 {
		t.Fatalf("a zero snapshot's subtree: %+v", got)
	}
	sn.Release()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("Get after Release did not panic")
			}
		}()
		sn.Get("domain.a")
	}()
	s := New(Config{})
	if _, err := s.Commit(context.Background(), 0, nil, Delta{{Path: "domain.a", Op: contract.OpSet, Value: []byte{7}}}, Options{}); err != nil {
		t.Fatal(err)
	}
	var fresh Snapshot
	s.Take(&fresh)
	if e, ok := fresh.Get("domain.a"); !ok || e.Value[0] != 7 {
		t.Fatalf("a zero snapshot taken: Get = %+v, %v", e, ok)
	}
	fresh.Release()
	s.Take(&sn) // released: may be taken
	defer sn.Release()
	if e, ok := sn.Get("domain.a"); !ok || e.Value[0] != 7 {
		t.Fatalf("a released zero snapshot taken: Get = %+v, %v", e, ok)
	}
}

// TestKnownNodeGoneBeforeTheConflictCheck: a commit from an older
// snapshot checks the path's node in the trie for writes after it, not
// the node it found before its lock and trimming took out since.
func TestKnownNodeGoneBeforeTheConflictCheck(t *testing.T) {
	s := New(Config{})
	ctx := context.Background()
	p := contract.Path("domain.a.b")
	if _, err := s.Commit(ctx, s.Version(), nil, Delta{{Path: p, Op: contract.OpSet, Value: []byte{1}}}, Options{}); err != nil {
		t.Fatal(err)
	}
	stale := s.index.get(p) // what a Commit from the snapshot below looked up before its lock
	if _, err := s.Commit(ctx, s.Version(), nil, Delta{{Path: p, Op: contract.OpDelete}}, Options{}); err != nil {
		t.Fatal(err)
	}
	sn := s.Snapshot() // at 2, after the delete: the path has no node
	defer sn.Release()
	if !stale.gone {
		t.Fatal("the deleted path's node is still in the trie")
	}
	if _, err := s.Commit(ctx, s.Version(), nil, Delta{{Path: p, Op: contract.OpSet, Value: []byte{3}}}, Options{}); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	err := s.validate(sn.Version(), nil, Delta{{Path: p, Op: contract.OpSet, Value: []byte{4}}}, []*node{stale}, Smart)
	s.mu.Unlock()
	var ce *ConflictError
	if !errors.As(err, &ce) || len(ce.Paths) != 1 || ce.Paths[0] != p {
		t.Fatalf("a write to %s from version %d after it was written at 3: %v, want a conflict on it", p, sn.Version(), err)
	}
}
