package supervisor

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/protocol"
)

// TestOpIDBoundToCall: an op id names one call (process and canonical
// args). Sent at once for two calls, it applies once: the winner's call
// gets duplicates, the other op_id_conflict. The same call spelled
// otherwise (whitespace, key order, null for no args) is a duplicate;
// another process or other args is refused, counted as no commit, and
// still refused after a restart and after a restore from a backup.
func TestOpIDBoundToCall(t *testing.T) {
	state := t.TempDir()
	h := startNoServe(t, func(cfg *Config) { cfg.StateDir = state; cfg.Workers = 2 })
	ctx := context.Background()
	exec := func(s *Supervisor, process, args, id string) *protocol.Reply {
		var a []byte
		if args != "" {
			a = []byte(args)
		}
		return s.Execute(ctx, &protocol.Execute{Process: process, Args: a, OpID: id})
	}

	args := [2]string{`{"by":7}`, `{"by":8}`}
	var applied, dups, conflicts [2]atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		k := i % 2
		wg.Go(func() {
			rep := exec(h.s, "counter.add", args[k], "the-op")
			switch {
			case rep.Err != nil && errors.Is(rep.Err, protocol.ErrOpIDConflict):
				conflicts[k].Add(1)
			case rep.Err != nil:
				t.Errorf("%s: %v", args[k], rep.Err)
			case rep.Duplicate:
				dups[k].Add(1)
			default:
				applied[k].Add(1)
			}
		})
	}
	wg.Wait()
	g := h.s.Get(&protocol.Get{Path: demo.CounterPath})
	if g.Err != nil || len(g.Entries) != 1 {
		t.Fatalf("counter: %+v", g)
	}
	w := 0
	if string(g.Entries[0].Value) == "8" {
		w = 1
	}
	if string(g.Entries[0].Value) != []string{"7", "8"}[w] || applied[w].Load() != 1 || dups[w].Load() != 7 || conflicts[1-w].Load() != 8 ||
		applied[1-w].Load() != 0 || dups[1-w].Load() != 0 || conflicts[w].Load() != 0 {
		t.Fatalf("counter %s; applied %d/%d, duplicates %d/%d, conflicts %d/%d", g.Entries[0].Value,
			applied[0].Load(), applied[1].Load(), dups[0].Load(), dups[1].Load(), conflicts[0].Load(), conflicts[1].Load())
	}
	winner, loser := args[w], args[1-w]
	respelled := map[string]string{`{"by":7}`: " {\n \"by\" : 7 } ", `{"by":8}`: `{"by":8 }`}[winner]

	if rep := exec(h.s, "bank.open", `{"account":"ada","balance":7}`, "open"); rep.Err != nil || rep.Duplicate {
		t.Fatalf("bank.open: %+v", rep)
	}
	if rep := exec(h.s, "counter.add", "", "plain"); rep.Err != nil || rep.Duplicate {
		t.Fatalf("counter.add without args: %+v", rep)
	}
	commits := h.s.Status(&protocol.Status{}).Commits
	check := func(where string, s *Supervisor) {
		t.Helper()
		v := s.store.Version()
		for _, c := range []struct{ process, args, id string }{
			{"counter.add", loser, "the-op"},
			{"noop", "", "the-op"},
			{"bank.open", `{"account":"ada","balance":8}`, "open"},
			{"counter.add", `{"by":1}`, "plain"},
		} {
			if rep := exec(s, c.process, c.args, c.id); rep.Err == nil || !errors.Is(rep.Err, protocol.ErrOpIDConflict) {
				t.Errorf("%s: %s %s with op id %s: %+v, want op_id_conflict", where, c.process, c.args, c.id, rep)
			}
		}
		for _, c := range []struct{ process, args, id string }{
			{"counter.add", winner, "the-op"},
			{"counter.add", respelled, "the-op"},
			{"bank.open", `{ "balance": 7, "account": "ada" }`, "open"},
			{"counter.add", "null", "plain"},
			{"counter.add", "", "plain"},
		} {
			if rep := exec(s, c.process, c.args, c.id); rep.Err != nil || !rep.Duplicate {
				t.Errorf("%s: %s %s with op id %s: %+v, want a duplicate", where, c.process, c.args, c.id, rep)
			}
		}
		if s.store.Version() != v {
			t.Errorf("%s: the refused calls moved the store from version %d to %d", where, v, s.store.Version())
		}
	}
	check("first run", h.s)
	if got := h.s.Status(&protocol.Status{}).Commits; got != commits {
		t.Fatalf("commits %d after the refused calls and duplicates, want %d", got, commits)
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	if rep := h.s.Backup(ctx, &protocol.Backup{Path: backup}); rep.Err != nil {
		t.Fatal(rep.Err)
	}
	if err := h.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.serveErr(); err != nil {
		t.Fatal(err)
	}
	r := startNoServe(t, func(cfg *Config) { cfg.StateDir = state })
	check("after a restart", r.s)
	b := startNoServe(t, func(cfg *Config) { cfg.StateDir = t.TempDir(); cfg.Restore = backup })
	check("after a restore", b.s)
}
