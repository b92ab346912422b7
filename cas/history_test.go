package cas

import (
	"context"
	"testing"

	"github.com/theus-run/theus/contract"
)

// untilCollected runs commit until a commit collects (due), at most
// collectEvery times.
func untilCollected(t *testing.T, commit func(), s *Store) {
	t.Helper()
	for range collectEvery {
		commit()
		if s.hist.lazy == 0 {
			return
		}
	}
	t.Fatalf("%d commits and none collected", collectEvery)
}

func chainLen(n *node) int {
	k := 0
	for r := n.head.Load(); r != nil; r = r.prev {
		k++
	}
	return k
}

// History is kept as long as a snapshot can read it, and overwrites no
// snapshot can see for at most collectEvery commits: a commit that
// collects keeps one rev per path without readers, a held snapshot pins
// its version, and a deleted path leaves the trie once no snapshot can
// see it.
func TestHistoryIsTrimmed(t *testing.T) {
	s := New(Config{})
	p := contract.MustParse("domain.a.b")
	put := func(op contract.Op) {
		t.Helper()
		var v []byte
		if op == contract.OpSet {
			v = []byte{1}
		}
		if _, err := s.Commit(context.Background(), s.Version(), nil, Delta{{Path: p, Op: op, Value: v}}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 * collectEvery {
		put(contract.OpSet)
		if k := chainLen(s.index.get(p)); k > collectEvery {
			t.Fatalf("no reader, yet %d revs kept after %d commits", k, i+1)
		}
		if k := chainLen(s.index.get(p)); s.hist.lazy == 0 && k != 1 {
			t.Fatalf("no reader, yet %d revs kept by a commit that collected", k)
		}
	}
	s.Collect()
	sn := s.Snapshot()
	for range 10 {
		put(contract.OpSet)
	}
	if k := chainLen(s.index.get(p)); k != 11 {
		t.Fatalf("with a reader: %d revs, want 11", k)
	}
	if e, ok := sn.Get(p); !ok || e.Version != sn.Version() {
		t.Fatal("snapshot lost its value")
	}
	sn.Release()
	untilCollected(t, func() { put(contract.OpSet) }, s)
	if k := chainLen(s.index.get(p)); k != 1 {
		t.Fatalf("after release: %d revs, want 1", k)
	}
	sn2 := s.Snapshot()
	put(contract.OpDelete)
	if s.index.get(p) == nil {
		t.Fatal("deleted path dropped while a snapshot can still read it")
	}
	if _, ok := sn2.Get(p); !ok {
		t.Fatal("snapshot lost the deleted value")
	}
	sn2.Release()
	put2 := contract.MustParse("domain.z")
	if _, err := s.Commit(context.Background(), s.Version(), nil, Delta{{Path: put2, Op: contract.OpSet}}, Options{}); err != nil {
		t.Fatal(err)
	}
	if s.index.get(p) != nil {
		t.Fatal("dead path kept")
	}
	if s.index.get("domain.a") != nil {
		t.Fatal("empty ancestor kept")
	}
	if len(s.hist.pending) != 0 || len(s.hist.old) != 0 {
		t.Fatalf("pending %d, old epochs %d", len(s.hist.pending), len(s.hist.old))
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d", s.Len())
	}
}

// A commit from a snapshot older than the trimmed history is refused,
// never validated against partial history.
func TestSnapshotTooOld(t *testing.T) {
	s := New(Config{})
	p := contract.MustParse("domain.x")
	ctx := context.Background()
	sn := s.Snapshot()
	old := sn.Version()
	sn.Release() // released before committing: a caller bug
	for range 3 {
		if _, err := s.Commit(ctx, s.Version(), nil, Delta{{Path: p, Op: contract.OpDelete}}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Commit(ctx, old, []contract.Path{p}, Delta{{Path: "domain.y", Op: contract.OpSet}}, Options{})
	if ce, ok := err.(*ConflictError); !ok || ce.Reason != "snapshot too old" {
		t.Fatalf("got %v", err)
	}
}

func TestEntryPath(t *testing.T) {
	if got := entryPath("domain.log_x", 42); got != "domain.log_x.00000000000000000042" {
		t.Fatal(got)
	}
	if got := entryPath("l", ^uint64(0)); len(got) != 2+seqDigits {
		t.Fatal(got)
	}
}

// TestHotNodePendingOnce: a path written at every commit while a snapshot
// holds the horizon back has one entry in the trim queue, not one per
// commit (each entry walks the path's revs down to the horizon, so one per
// commit made trimming quadratic in the horizon's lag), and once the
// snapshot is renewed or released its history is still trimmed in full.
func TestHotNodePendingOnce(t *testing.T) {
	s := New(Config{})
	p := contract.MustParse("domain.hot")
	q := contract.MustParse("domain.cold")
	put := func(path contract.Path) {
		t.Helper()
		if _, err := s.Commit(context.Background(), s.Version(), nil, Delta{{Path: path, Op: contract.OpSet, Value: []byte{1}}}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	put(p)
	put(q)
	sn := s.Snapshot()
	for range 1000 {
		put(p)
	}
	put(q)
	if n := len(s.hist.pending); n != 2 {
		t.Fatalf("%d entries in the trim queue for two written paths, want 2", n)
	}
	if k := chainLen(s.index.get(p)); k != 1001 {
		t.Fatalf("%d revs of the hot path while the snapshot holds the first, want 1001", k)
	}
	// Renew while writing: the horizon moves in steps, the node stays
	// queued once, and each step trims what it can.
	for range 5 {
		sn.Release()
		sn = s.Snapshot()
		for range 100 {
			put(p)
		}
		if n := len(s.hist.pending); n != 1 {
			t.Fatalf("%d entries in the trim queue, want 1 (the hot path)", n)
		}
		if k := chainLen(s.index.get(p)); k != 101 {
			t.Fatalf("%d revs of the hot path, want 101 (the snapshot's and the 100 after it)", k)
		}
	}
	sn.Release()
	s.Collect()
	if k := chainLen(s.index.get(p)); k != 1 {
		t.Fatalf("%d revs of the hot path with no snapshot, want 1", k)
	}
	if n := len(s.hist.pending); n != 0 {
		t.Fatalf("%d entries in the trim queue with no snapshot, want 0", n)
	}
}

// TestWrittenAgainIsQueuedAgain: a node whose queued entry comes up while
// it holds a rev newer than the horizon (it was written again since) goes
// back in the queue, so that rev's predecessor is dropped once the
// snapshots that pinned it are gone, even if the path is never written
// again.
func TestWrittenAgainIsQueuedAgain(t *testing.T) {
	s := New(Config{})
	p := contract.MustParse("domain.hot")
	set := func(p contract.Path) {
		t.Helper()
		if _, err := s.Commit(context.Background(), s.Version(), nil, Delta{{Path: p, Op: contract.OpSet, Value: []byte{1}}}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	set(p) // 1
	s1 := s.Snapshot()
	set(p) // 2: p queued at 2
	s2 := s.Snapshot()
	s1.Release()
	set(p) // 3: p's entry comes up (horizon 2) while its head is 3: queued again
	s2.Release()
	untilCollected(t, func() { set("domain.other") }, s) // no snapshot left; p is never written again
	if k := chainLen(s.index.get(p)); k != 1 {
		t.Fatalf("%d revs kept for %s with no snapshot held, want 1", k, p)
	}
	if len(s.hist.pending) != 0 {
		t.Fatalf("%d entries still pending", len(s.hist.pending))
	}
}

// TestOldEpochsPoppedWithoutGarbage: commits that only create paths (a
// log's appends) queue nothing to trim, yet the epochs that their
// snapshots held are popped once released; they piled up in h.old, one
// per commit, before.
func TestOldEpochsPoppedWithoutGarbage(t *testing.T) {
	s := New(Config{})
	d := Delta{{Path: "domain.log_x", Op: contract.OpAppend, Value: []byte{1}}}
	for range 1000 {
		sn := s.Snapshot() // held through the commit, as the Runner does
		if _, err := s.Commit(context.Background(), sn.Version(), nil, d, Options{}); err != nil {
			t.Fatal(err)
		}
		sn.Release()
	}
	if n, p := len(s.hist.old), len(s.hist.pending); n > 1 || p != 0 {
		t.Fatalf("%d old epochs, %d pending after 1,000 appends", n, p)
	}
}
