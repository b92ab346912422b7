package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/protocol"
)

// Runs that read different keys under one declared input never conflict:
// the worker reports what it read and the commit is validated on that.
// Each of 32 goroutines adds to its own key, all in flight together.
func TestDisjointKeysDoNotConflict(t *testing.T) {
	h := start(t, 2, nil)
	ctx := context.Background()
	const clients, adds = 32, 20
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			args := fmt.Appendf(nil, `{"key":"k%d"}`, i)
			for range adds {
				if rep := h.s.Execute(ctx, &protocol.Execute{Process: "counters.add", Args: args}); rep.Err != nil {
					t.Error(rep.Err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range clients {
		g := h.s.Get(&protocol.Get{Path: demo.CountersPath + ".k" + strconv.Itoa(i)})
		if g.Err != nil || len(g.Entries) != 1 || string(g.Entries[0].Value) != strconv.Itoa(adds) {
			t.Fatalf("counter k%d: %+v", i, g)
		}
	}
	if n := h.s.conflicts.Load(); n != 0 {
		t.Fatalf("%d conflicts between adds to different keys", n)
	}
}

// A templated contract is bound to each call's args: a missing or
// malformed arg fails the call with bad_args before anything runs, and a
// bound call ships only its own paths.
func TestTemplatedContract(t *testing.T) {
	h := start(t, 1, nil)
	ctx := context.Background()
	for _, acct := range []string{"a", "b", "c"} {
		args := fmt.Appendf(nil, `{"account":%q,"balance":10}`, acct)
		if rep := h.s.Execute(ctx, &protocol.Execute{Process: "bank.open", Args: args}); rep.Err != nil {
			t.Fatal(rep.Err)
		}
	}
	for _, bad := range []string{`{"from":"a","amount":1}`, `{"from":"a","to":"b.c","amount":1}`, `{"from":"a","to":"internal_x","amount":1}`, `{"from":7,"to":"b","amount":1}`} {
		rep := h.s.Execute(ctx, &protocol.Execute{Process: "bank.transfer", Args: []byte(bad)})
		if !errors.Is(rep.Err, protocol.ErrBadArgs) {
			t.Errorf("args %s: %+v, want bad_args", bad, rep.Err)
		}
	}
	v := h.s.store.Version()
	rep := h.s.Execute(ctx, &protocol.Execute{Process: "bank.transfer", Args: []byte(`{"from":"a","to":"b","amount":4}`)})
	if rep.Err != nil || string(rep.Result) != `{"from":6,"to":14}` || rep.Version != uint64(v)+1 {
		t.Fatalf("transfer: %+v", rep)
	}
	p := h.s.procs["bank.transfer"]
	c, err := p.spec.Bind([]byte(`{"from":"a","to":"b"}`))
	if err != nil || len(c.Inputs) != 2 || c.CheckRead(contract.MustParse("domain.accounts.c")) == nil {
		t.Fatalf("bound inputs %v (%v): account c is declared", c.Inputs, err)
	}
}
