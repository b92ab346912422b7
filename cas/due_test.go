package cas

import (
	"context"
	"testing"

	"github.com/theus-run/theus/contract"
)

// TestCollectDue: history that only costs memory waits for every
// collectEvery-th commit, but a watched value goes to Dropped, and a
// deleted path leaves the trie, at the first commit after no snapshot
// can see it, whatever that commit writes.
func TestCollectDue(t *testing.T) {
	var dropped int
	s := New(Config{
		Watch:   func(p contract.Path) bool { return p == "domain.w" },
		Dropped: func(contract.Path, []byte) { dropped++ },
	})
	ctx := context.Background()
	commit := func(p contract.Path, op contract.Op) {
		t.Helper()
		w := Write{Path: p, Op: op}
		if op == contract.OpSet {
			w.Value = []byte{1}
		}
		if _, err := s.Commit(ctx, s.Version(), nil, Delta{w}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	set := func(p contract.Path) { t.Helper(); commit(p, contract.OpSet) }
	del := func(p contract.Path) { t.Helper(); commit(p, contract.OpDelete) }

	// A watched path written again and again: each commit drops the
	// value it replaced.
	for i := range 3 * collectEvery {
		set("domain.w")
		if dropped != i {
			t.Fatalf("%d values dropped after %d writes of a watched path, want %d", dropped, i+1, i)
		}
	}
	// An unwatched one: collected every collectEvery commits.
	collects := 0
	for range 3 * collectEvery {
		set("domain.u")
		if s.hist.lazy == 0 {
			collects++
		}
	}
	if collects != 3 {
		t.Fatalf("%d collects in %d writes of an unwatched path, want 3", collects, 3*collectEvery)
	}

	// A watched value pinned by a snapshot is dropped by the first
	// commit after its release, an unwatched write; so is one pinned
	// while its path went back in the queue (written again after the
	// version its entry was queued at).
	before := dropped
	sn1 := s.Snapshot()
	set("domain.w") // queued at this version
	sn2 := s.Snapshot()
	set("domain.u")
	if dropped != before {
		t.Fatal("a value dropped while a snapshot can see it")
	}
	sn1.Release()
	set("domain.w") // its entry comes up, and goes back: sn2 pins the last value
	if dropped != before+1 {
		t.Fatalf("%d values dropped after the first release, want 1", dropped-before)
	}
	sn2.Release()
	set("domain.u")
	if dropped != before+2 {
		t.Fatalf("%d values dropped by the first commit after the second release, want 2", dropped-before)
	}

	// A deleted path pinned by a snapshot leaves with the first commit
	// after its release.
	set("domain.d")
	sn := s.Snapshot()
	del("domain.d")
	set("domain.u")
	if s.index.get("domain.d") == nil {
		t.Fatal("a deleted path left while a snapshot can see it")
	}
	sn.Release()
	set("domain.u")
	if s.index.get("domain.d") != nil {
		t.Fatal("a deleted path kept after the release and a commit")
	}

	// The same when its entry went back in the queue.
	set("domain.e")
	sn1 = s.Snapshot()
	set("domain.e") // queued at this version
	sn2 = s.Snapshot()
	sn1.Release()
	del("domain.e") // the entry comes up and goes back: sn2 sees the value
	if s.index.get("domain.e") == nil {
		t.Fatal("a deleted path left while a snapshot can see it")
	}
	sn2.Release()
	set("domain.u")
	if s.index.get("domain.e") != nil {
		t.Fatal("a deleted path requeued, kept after the release and a commit")
	}

	// A path queued by an overwrite that has not been collected yet,
	// then deleted: it leaves with the delete.
	set("domain.q")
	for s.hist.lazy != 0 {
		set("domain.u")
	}
	set("domain.q")
	set("domain.q") // queued, not collected: lazy is 2
	del("domain.q")
	if s.index.get("domain.q") != nil {
		t.Fatal("a deleted path queued by an overwrite kept after its delete")
	}

	// A path queued by an overwrite while a snapshot holds the value
	// before it, then deleted: the entry becomes eager, so the path
	// leaves with the first commit after the release. (Found in review:
	// the set had queued the entry as lazy, and the delete found it
	// queued.)
	set("domain.l")
	sn = s.Snapshot()
	set("domain.l") // queued, lazy
	del("domain.l")
	if s.index.get("domain.l") == nil {
		t.Fatal("a deleted path left while a snapshot can see it")
	}
	sn.Release()
	set("domain.u")
	if s.index.get("domain.l") != nil {
		t.Fatal("a deleted path queued lazily kept after the release and a commit")
	}

	// With nothing eager left, commits are lazy again.
	if s.hist.eager != 0 {
		t.Fatalf("%d eager entries left with no snapshot held", s.hist.eager)
	}
	set("domain.u")
	set("domain.u")
	if s.hist.lazy != 2 {
		t.Fatalf("lazy %d after two unwatched writes, want 2", s.hist.lazy)
	}
}
