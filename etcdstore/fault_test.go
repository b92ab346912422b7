package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
)

// TestMembersKilledUnderLoad: increments with op ids run through two
// stores (clients on every member) while one follower is stopped, then
// the leader. Commits go on while a quorum lives; an increment whose
// outcome was unknown is sent again with its op id until it is known; at
// the end every acknowledged increment is counted exactly once.
func TestMembersKilledUnderLoad(t *testing.T) {
	stores := []*etcdstore.Store{store(t), store(t)}
	const writers, keys = 4, 4
	var acked, uncertain atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range writers {
		r := runner(stores[g%2])
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("domain.n.k%d", (g+i)%keys)
				c := mustContract(t, "inc", []string{key}, []string{key})
				opID := fmt.Sprintf("inc-%d-%d", g, i)
				for try := 0; ; try++ {
					ctx, cancel := context.WithTimeout(bg, 10*time.Second)
					_, err := r.Call(ctx, c, opID, func(_ context.Context, v cas.View) (cas.Outcome, error) {
						b, _, err := v.Get(P(key))
						if err != nil {
							return cas.Outcome{}, err
						}
						var d cas.Delta
						d.Set(P(key), enc(dec(t, b)+1))
						return cas.Outcome{Delta: d}, nil
					})
					cancel()
					if err == nil {
						acked.Add(1)
						break
					}
					if !errors.Is(err, etcdstore.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) || try > 30 {
						t.Errorf("increment %s: %v", opID, err)
						return
					}
					uncertain.Add(1) // the same op id again: applied at most once
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	// progress waits until n more increments were acknowledged.
	progress := func(what string, n int64) {
		t.Helper()
		start := acked.Load()
		deadline := time.Now().Add(60 * time.Second)
		for acked.Load() < start+n {
			if time.Now().After(deadline) || t.Failed() {
				close(stop)
				wg.Wait()
				t.Fatalf("%s: %d increments acknowledged in 60 s, want %d", what, acked.Load()-start, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	progress("warm-up", 20)
	cl := cluster(t)
	lead := cl.Leader()
	follower := (lead + 1) % cl.Len()
	cl.Stop(follower)
	progress("one follower down", 20)
	if err := cl.Restart(follower); err != nil {
		t.Fatal(err)
	}
	progress("follower back", 10)
	lead = cl.Leader()
	cl.Stop(lead)
	progress("leader down", 20)
	if err := cl.Restart(lead); err != nil {
		t.Fatal(err)
	}
	progress("leader back", 10)
	close(stop)
	wg.Wait()
	var all []contract.Path
	for k := range keys {
		all = append(all, P(fmt.Sprintf("domain.n.k%d", k)))
	}
	sn, err := stores[0].View(bg, all)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, e := range sn.Subtree(P("domain.n")) {
		total += dec(t, e.Value)
	}
	if total != acked.Load() {
		t.Fatalf("counters sum to %d, %d increments were acknowledged", total, acked.Load())
	}
	t.Logf("%d increments acknowledged, %d sent again after an unknown outcome", acked.Load(), uncertain.Load())
}
