package supervisor

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/protocol"
)

// noSignalStored fails if the store holds a path in the SIGNAL zone.
func noSignalStored(t *testing.T, s *Supervisor) {
	t.Helper()
	for _, e := range s.store.Export().Entries {
		if e.Path.InZone(contract.ZoneSignal) {
			t.Fatalf("the store holds the signal %s = %s", e.Path, e.Value)
		}
	}
}

// A signal written by a process commits (it takes a version) but never
// reaches the DATA zone, a snapshot or the state file, also across a
// restart with --durability sync; the DATA written beside it does.
func TestSignalsNeverStored(t *testing.T) {
	state := t.TempDir()
	ctx := context.Background()
	h := startNoServe(t, func(cfg *Config) { cfg.StateDir = state; cfg.Durability = durable.Sync })
	rep := h.s.Execute(ctx, &protocol.Execute{Process: "ping.mark", Args: []byte(`{"key":"a","value":1}`)})
	if rep.Err != nil || rep.Version != 1 {
		t.Fatalf("ping.mark: version %d, %v", rep.Version, rep.Err)
	}
	rep = h.s.Execute(ctx, &protocol.Execute{Process: "ping.send", Args: []byte(`{"value":2}`)})
	if rep.Err != nil || rep.Version != 2 {
		t.Fatalf("ping.send: version %d, %v; want a commit at version 2", rep.Version, rep.Err)
	}
	if g := h.s.Get(&protocol.Get{Path: "domain.sig_ping"}); !errors.Is(g.Err, protocol.ErrNotFound) {
		t.Fatalf("get domain.sig_ping: %+v, want not_found", g)
	}
	if g := h.s.Get(&protocol.Get{Path: "domain.pings.a"}); g.Err != nil || string(g.Entries[0].Value) != "1" {
		t.Fatalf("get domain.pings.a: %+v", g)
	}
	noSignalStored(t, h.s)
	if err := h.s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-h.done
	r := startNoServe(t, func(cfg *Config) { cfg.StateDir = state; cfg.Durability = durable.Sync })
	if v := r.s.store.Version(); v != 2 {
		t.Fatalf("restarted at version %d, want 2", v)
	}
	noSignalStored(t, r.s)
	if g := r.s.Get(&protocol.Get{Path: "domain"}); g.Err != nil || len(g.Entries) != 1 || g.Entries[0].Path != "domain.pings.a" {
		t.Fatalf("after the restart, domain holds %+v", g)
	}
}

// A signal is set, never deleted or appended to: such a write fails the
// call with a clear error and commits nothing.
func TestSignalDeleteRefused(t *testing.T) {
	h := startNoServe(t, func(*Config) {})
	rep := h.s.Execute(context.Background(), &protocol.Execute{Process: "sig.delete"})
	if rep.Err == nil || rep.Err.Code != protocol.CodeContractViolation || rep.Err.Path != "domain.sig_ping" || !strings.Contains(rep.Err.Message, "SIGNAL") {
		t.Fatalf("sig.delete: %+v, want a contract_violation naming the SIGNAL path", rep.Err)
	}
	if v := h.s.store.Version(); v != 0 {
		t.Fatalf("version %d after a refused signal delete", v)
	}
}
