package cas_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// storeEngine is a cas.Engine over a Store: what a remote engine does,
// without the network (a View copies the inputs into a Frozen snapshot).
type storeEngine struct {
	s     *cas.Store
	views int
	mu    sync.Mutex
}

func (e *storeEngine) View(_ context.Context, inputs []contract.Path) (*cas.Snapshot, error) {
	e.mu.Lock()
	e.views++
	e.mu.Unlock()
	sn := e.s.Snapshot()
	defer sn.Release()
	var es []cas.Entry
	for _, in := range inputs {
		es = append(es, sn.Subtree(in)...)
	}
	return cas.Frozen(sn.Version(), es), nil
}

func (e *storeEngine) Commit(ctx context.Context, snap cas.Version, reads []contract.Path, d cas.Delta, opts cas.Options) (cas.Result, error) {
	return e.s.Commit(ctx, snap, reads, d, opts)
}

func (e *storeEngine) LookupOp(_ context.Context, id string, d cas.OpDigest) (cas.Version, []byte, bool, error) {
	return e.s.LookupOp(id, d)
}

func TestFrozenReadsOnlyItsEntries(t *testing.T) {
	sn := cas.Frozen(7, []cas.Entry{
		{Path: P("domain.a.x"), Value: []byte("1"), Version: 3},
		{Path: P("domain.a"), Value: []byte("0"), Version: 2},
		{Path: P("domain.a-b"), Value: []byte("2"), Version: 4}, // sorts between domain.a and domain.a.x
		{Path: P("domain.b"), Value: []byte("3"), Version: 5},
	})
	if sn.Version() != 7 {
		t.Fatalf("version %d", sn.Version())
	}
	if e, ok := sn.Get(P("domain.a.x")); !ok || string(e.Value) != "1" || e.Version != 3 {
		t.Fatalf("Get domain.a.x = %+v, %v", e, ok)
	}
	if _, ok := sn.Get(P("domain.c")); ok {
		t.Fatal("Get of a path outside the entries found a value")
	}
	var got []string
	for _, e := range sn.Subtree(P("domain.a")) {
		got = append(got, string(e.Path))
	}
	if !slices.Equal(got, []string{"domain.a", "domain.a.x"}) {
		t.Fatalf("Subtree(domain.a) = %v", got)
	}
	sn.Release()
	sn.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("Renew of a Frozen snapshot did not panic")
		}
	}()
	sn.Renew()
}

// A FrozenHeld snapshot calls its release once, at its first Release.
func TestFrozenHeldReleasesOnce(t *testing.T) {
	n := 0
	sn := cas.FrozenHeld(3, nil, func() { n++ })
	if n != 0 {
		t.Fatalf("released %d times before Release", n)
	}
	sn.Release()
	sn.Release()
	if n != 1 {
		t.Fatalf("released %d times by two Releases, want 1", n)
	}
}

// TestRunnerDrivesAnEngine: with an Engine, attempts read a View and
// commit through it, a conflict runs again on a new View, and an op id is
// looked up through it.
func TestRunnerDrivesAnEngine(t *testing.T) {
	e := &storeEngine{s: cas.New(cas.Config{})}
	var seed cas.Delta
	seed.Set(P("domain.n"), enc(0))
	if _, err := e.s.Commit(bg, 0, nil, seed, cas.Options{}); err != nil {
		t.Fatal(err)
	}
	r := &cas.Runner{Engine: e}
	c := mustContract(t, "inc", []string{"domain.n"}, []string{"domain.n"}, contract.Pure)
	first := true
	rep, err := r.Call(bg, c, "op-1", func(_ context.Context, v cas.View) (cas.Outcome, error) {
		b, _, err := v.Get(P("domain.n"))
		if err != nil {
			return cas.Outcome{}, err
		}
		if first { // another writer lands between this run's View and its commit
			first = false
			var d cas.Delta
			d.Set(P("domain.n"), enc(10))
			if _, err := e.s.Commit(bg, e.s.Version(), nil, d, cas.Options{}); err != nil {
				return cas.Outcome{}, err
			}
		}
		var d cas.Delta
		d.Set(P("domain.n"), enc(dec(t, b)+1))
		return cas.Outcome{Delta: d, Result: []byte(`"ok"`)}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Attempts != 2 || rep.Conflicts != 1 || e.views != 2 {
		t.Fatalf("attempts %d conflicts %d views %d, want 2, 1, 2", rep.Attempts, rep.Conflicts, e.views)
	}
	sn := e.s.Snapshot()
	if got, _ := sn.Get(P("domain.n")); dec(t, got.Value) != 11 {
		t.Fatalf("domain.n = %d, want 11", dec(t, got.Value))
	}
	sn.Release()
	again, err := r.Call(bg, c, "op-1", func(context.Context, cas.View) (cas.Outcome, error) {
		t.Fatal("a repeated op id ran")
		return cas.Outcome{}, nil
	})
	if err != nil || !again.Duplicate || again.Version != rep.Version || string(again.Result) != `"ok"` {
		t.Fatalf("repeat: %+v, %v", again, err)
	}
	r.Arbiter = vip.New(vip.Config{})
	defer r.Arbiter.Close()
	if _, err := r.Call(bg, c, "", func(context.Context, cas.View) (cas.Outcome, error) { return cas.Outcome{}, nil }); !errors.Is(err, cas.ErrEngineArbiter) {
		t.Fatalf("an Engine with an Arbiter: %v", err)
	}
}
