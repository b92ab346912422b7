package supervisor

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/protocol"
)

// TestTrainingLastWriterWins: concurrent bank.opens of one account in
// training mode (where smart lets exactly one win, see
// TestConcurrentOpensOneWins) run once each, never conflict or take a
// ticket, and the balance left is one of the successful opens'.
func TestTrainingLastWriterWins(t *testing.T) {
	h := start(t, 4, func(c *Config) { c.Mode = cas.Training })
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const opens = 16
	var mu sync.Mutex
	var won []int64
	var wg sync.WaitGroup
	for i := range opens {
		balance := int64(i + 1)
		wg.Go(func() {
			res, err := c.Exec(ctx, "bank.open", demo.OpenArgs{Account: "hot", Balance: balance})
			switch {
			case err == nil:
				if res.Attempts != 1 || res.Conflicts != 0 || res.VIP || res.Mode != "training" {
					t.Errorf("open with %d: %+v; want one attempt, no conflict, no ticket, mode training", balance, res)
				}
				mu.Lock()
				won = append(won, balance)
				mu.Unlock()
			case !errors.Is(err, &protocol.Error{Code: demo.CodeAccountExists}): // it saw an earlier commit
				t.Errorf("open with %d: %v, want success or account_exists", balance, err)
			}
		})
	}
	wg.Wait()
	v, err := c.Get(ctx, demo.AccountsPath+".hot")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := strconv.ParseInt(string(v.Entries[0].Value), 10, 64)
	if !slices.Contains(won, got) {
		t.Fatalf("balance %d is none of the successful opens' %v", got, won)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != "training" || st.Conflicts != 0 || st.Retries != 0 || st.VIP != 0 || st.Commits != uint64(len(won)) {
		t.Fatalf("status: mode %q, %d conflicts, %d retries, %d VIP, %d commits; want training, none, none, none, %d",
			st.Mode, st.Conflicts, st.Retries, st.VIP, st.Commits, len(won))
	}
}

// TestTrainingKeepsContractsAndOpIDs: in training a write outside the
// contract is still refused and applies nothing, and an op id still
// applies once.
func TestTrainingKeepsContractsAndOpIDs(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.Mode = cas.Training })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep := h.s.Execute(ctx, &protocol.Execute{ID: 1, Process: "fault.undeclared"})
	if rep.Err == nil || rep.Err.Code != protocol.CodeContractViolation || rep.Mode != "training" {
		t.Fatalf("fault.undeclared: %+v (err %v); want contract_violation in mode training", rep, rep.Err)
	}
	if v := h.s.store.Version(); v != 0 {
		t.Fatalf("version %d after a refused commit, want 0", v)
	}
	c := h.dial(t)
	var first *client.Result
	for i := range 2 {
		res, err := c.Do(ctx, client.Request{Process: "counter.add", OpID: "op-train"})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res
			continue
		}
		if !res.Duplicate || res.Version != first.Version || string(res.Result) != string(first.Result) {
			t.Fatalf("repeat: %+v, want the first outcome %+v as a duplicate", res, first)
		}
	}
	if v, err := c.Get(ctx, demo.CounterPath); err != nil || string(v.Entries[0].Value) != "1" {
		t.Fatalf("counter after one op id sent twice: %v, %v; want 1", v, err)
	}
}

// TestReplyCarriesMode: every reply, a failure included, names the
// supervisor's mode, as status does.
func TestReplyCarriesMode(t *testing.T) {
	for _, mode := range []cas.Mode{cas.Smart, cas.Strict, cas.Training} {
		t.Run(mode.String(), func(t *testing.T) {
			h := start(t, 1, func(c *Config) { c.Mode = mode })
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c := h.dial(t)
			res, err := c.Exec(ctx, "noop", nil)
			if err != nil || res.Mode != mode.String() {
				t.Fatalf("noop: %+v, %v; want mode %s", res, err, mode)
			}
			rep := h.s.Execute(ctx, &protocol.Execute{ID: 2, Process: "no.such"})
			if rep.Err == nil || rep.Mode != mode.String() {
				t.Fatalf("unknown process: %+v; want an error in mode %s", rep, mode)
			}
			st, err := c.Status(ctx)
			if err != nil || st.Mode != mode.String() {
				t.Fatalf("status: %v, %v", st, err)
			}
		})
	}
}
