package cas

import (
	"context"
	"testing"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// TestCommitAllocs guards the one-path read-modify-write (what
// BenchmarkCommit measures): the new rev is its only allocation in the
// steady state, history bookkeeping and epoch publishing included (the
// epoch slab is one allocation per epochSlab commits, which the average
// rounds away).
func TestCommitAllocs(t *testing.T) {
	s := New(Config{Arbiter: vip.New(vip.Config{})})
	p := contract.MustParse("domain.k0")
	reads := []contract.Path{p}
	d := Delta{{Path: p, Op: contract.OpSet, Value: []byte{1, 2, 3, 4, 5, 6, 7, 8}}}
	ctx := context.Background()
	sn := s.Snapshot()
	rmw := func() {
		sn.Renew()
		sn.Get(p)
		if _, err := s.Commit(ctx, sn.Version(), reads, d, Options{}); err != nil {
			t.Fatal(err)
		}
		sn.Release()
	}
	for range 2 * epochSlab { // reach the steady state: queues grown, trie built
		rmw()
	}
	if n := testing.AllocsPerRun(10*epochSlab, rmw); n > 1 {
		t.Fatalf("%v allocations per one-path commit, want 1 (the new rev)", n)
	}
}

// TestTake: a Snapshot the caller keeps views the newest version, holds
// its history like one from Snapshot, allocates nothing, and may be
// taken again once released; a held or Frozen one is refused.
func TestTake(t *testing.T) {
	s := New(Config{})
	p := contract.MustParse("domain.k")
	set := func(b byte) {
		if _, err := s.Commit(context.Background(), s.Version(), nil, Delta{{Path: p, Op: contract.OpSet, Value: []byte{b}}}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	set(1)
	var sn Snapshot
	s.Take(&sn)
	set(2) // after the take: sn still sees 1
	if e, ok := sn.Get(p); !ok || e.Value[0] != 1 || sn.Version() != 1 {
		t.Fatalf("taken at 1, sees %v %v at version %d", e, ok, sn.Version())
	}
	if h := s.hist.horizon(); h != 1 {
		t.Fatalf("horizon %d while the taken snapshot holds 1", h)
	}
	mustPanic(t, "Take of a held snapshot", func() { s.Take(&sn) })
	sn.Release()
	if n := testing.AllocsPerRun(100, func() { s.Take(&sn); sn.Release() }); n != 0 {
		t.Fatalf("Take allocates %v times", n)
	}
	s.Take(&sn)
	if e, ok := sn.Get(p); !ok || e.Value[0] != 2 {
		t.Fatalf("taken again, sees %v %v", e, ok)
	}
	sn.Release()
	mustPanic(t, "Take of a Frozen snapshot", func() { s.Take(Frozen(1, []Entry{{Path: p, Value: []byte{1}, Version: 1}})) })
	mustPanic(t, "Take of a FrozenHeld snapshot", func() { s.Take(FrozenHeld(1, nil, func() {})) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	f()
}

// TestCallAllocs guards Runner.Call's own allocations: the commit's rev
// only (Call reuses its snapshots), no closure around the Func.
func TestCallAllocs(t *testing.T) {
	arb := vip.New(vip.Config{})
	r := &Runner{Store: New(Config{Arbiter: arb}), Arbiter: arb}
	p := contract.MustParse("domain.k")
	c, err := contract.New("k.set", nil, []contract.Path{p}, contract.Pure)
	if err != nil {
		t.Fatal(err)
	}
	out := Outcome{Delta: Delta{{Path: p, Op: contract.OpSet, Value: []byte{1}}}}
	f := func(context.Context, View) (Outcome, error) { return out, nil }
	ctx := context.Background()
	call := func() {
		if _, err := r.Call(ctx, c, "", f); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 * epochSlab {
		call()
	}
	if n := testing.AllocsPerRun(10*epochSlab, call); n > 1 {
		t.Fatalf("%v allocations per Call, want 1 (the rev; Call reuses its snapshots)", n)
	}
}
