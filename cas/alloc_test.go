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
