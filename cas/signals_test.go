package cas_test

import (
	"context"
	"errors"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// Signals ride with their commit: they take a version even with an empty
// delta, reach Committed in order, and are never applied; System writes
// commit with the delta without a contract check; a signal outside the
// contract fails the call and commits nothing.
func TestSignalsAndSystemWrites(t *testing.T) {
	var got []cas.Commit
	s := cas.New(cas.Config{Committed: func(c cas.Commit) { got = append(got, c) }})
	r := &cas.Runner{Store: s}
	c := mustContract(t, "ping", nil, []string{"domain.sig_ping", "domain.x"}, contract.Effect)
	run := func(out cas.Outcome) (cas.Report, error) {
		return r.Execute(bg, cas.Invocation{Contract: c, Run: func(context.Context, *cas.Snapshot, int) (cas.Outcome, error) { return out, nil }})
	}
	var sig cas.Delta
	sig.Set(P("domain.sig_ping"), []byte("1"))
	rep, err := run(cas.Outcome{Signals: sig})
	if err != nil || rep.ReadOnly || rep.Version != 1 {
		t.Fatalf("signal only: %+v, %v; want a commit at version 1", rep, err)
	}
	if len(got) != 1 || len(got[0].Changes) != 0 || len(got[0].Signals) != 1 || got[0].Signals[0].Path != "domain.sig_ping" {
		t.Fatalf("Committed got %+v", got)
	}
	if _, ok := get(t, s, "domain.sig_ping"); ok {
		t.Fatal("a signal was applied to the store")
	}
	var sys cas.Delta
	sys.Set(P("global.internal_run"), enc(7))
	var d cas.Delta
	d.Set(P("domain.x"), enc(1))
	if _, err := run(cas.Outcome{Delta: d, System: sys}); err != nil {
		t.Fatal(err)
	}
	if v, ok := get(t, s, "global.internal_run"); !ok || v != 7 {
		t.Fatalf("system write: %d, %v", v, ok)
	}
	var bad cas.Delta
	bad.Set(P("domain.sig_other"), []byte("1"))
	_, err = run(cas.Outcome{Signals: bad})
	var viol *contract.Violation
	if !errors.As(err, &viol) {
		t.Fatalf("signal outside the contract: %v, want a violation", err)
	}
	if s.Version() != 2 {
		t.Fatalf("version %d after a refused signal, want 2", s.Version())
	}
}

// A write under a PRIVATE root does not conflict with a read of an
// ancestor: processes cannot read it, and the supervisor keeps its own
// records there (workflow runs, the outbox).
func TestPrivateWritesDoNotConflictWithAncestorReads(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "global.config", 1)
	snap := s.Version()
	set(t, s, "global.internal_flux.run.r1", 2)
	set(t, s, "global.internal_flux.hist.r1.x", 3)
	var d cas.Delta
	d.Set(P("domain.out"), enc(1))
	if _, err := s.Commit(bg, snap, Ps("global"), d, cas.Options{}); err != nil {
		t.Fatalf("a read of global conflicted with PRIVATE writes: %v", err)
	}
	// A PRIVATE read still sees PRIVATE writes, and DATA writes still
	// conflict with a read of their ancestor.
	snap = s.Version()
	set(t, s, "global.internal_flux.run.r1", 4)
	if _, err := s.Commit(bg, snap, Ps("global.internal_flux"), d, cas.Options{}); !errors.Is(err, cas.ErrConflict) {
		t.Fatalf("a read of global.internal_flux after a write under it: %v, want a conflict", err)
	}
	snap = s.Version()
	set(t, s, "global.config", 5)
	if _, err := s.Commit(bg, snap, Ps("global"), d, cas.Options{}); !errors.Is(err, cas.ErrConflict) {
		t.Fatalf("a read of global after a write of global.config: %v, want a conflict", err)
	}
}
