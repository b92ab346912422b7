package cas_test

import (
	"context"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// A Runner's commit reaches Committed with its Origin: the process, the
// attempts (a conflict makes two), and when the invocation began.
func TestCommitCarriesOrigin(t *testing.T) {
	var got []cas.Commit
	s := cas.New(cas.Config{Committed: func(c cas.Commit) { got = append(got, c) }})
	r := &cas.Runner{Store: s, Sleep: func(context.Context, time.Duration) error { return nil }}
	c := mustContract(t, "inc", []string{"domain.x"}, []string{"domain.x"}, contract.Pure)
	before := time.Now()
	_, err := r.Execute(bg, cas.Invocation{Contract: c, Run: func(_ context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
		if attempt == 1 { // another commit lands on the path this attempt read
			var d cas.Delta
			d.Set(P("domain.x"), enc(10))
			if _, err := s.Commit(bg, s.Version(), nil, d, cas.Options{}); err != nil {
				t.Fatal(err)
			}
		}
		var d cas.Delta
		d.Set(P("domain.x"), enc(int64(attempt)))
		return cas.Outcome{Delta: d}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d commits, want 2", len(got))
	}
	if o := got[0].Origin; o != (cas.Origin{}) {
		t.Errorf("a commit made outside a Runner has origin %+v, want none", o)
	}
	o := got[1].Origin
	if o.Process != "inc" || o.Attempts != 2 || o.Conflicts != 1 || o.VIP || o.Start.Before(before) || o.Start.After(time.Now()) {
		t.Errorf("origin %+v, want inc, 2 attempts, 1 conflict, started during the call", o)
	}
}

// An Invocation's Start, when given, is the Origin's: the caller read
// the clock already.
func TestInvocationStart(t *testing.T) {
	var got []cas.Commit
	s := cas.New(cas.Config{Committed: func(c cas.Commit) { got = append(got, c) }})
	r := &cas.Runner{Store: s}
	c := mustContract(t, "inc", []string{"domain.x"}, []string{"domain.x"}, contract.Pure)
	start := time.Now().Add(-time.Hour)
	_, err := r.Execute(bg, cas.Invocation{Contract: c, Start: start, Run: func(context.Context, *cas.Snapshot, int) (cas.Outcome, error) {
		var d cas.Delta
		d.Set(P("domain.x"), enc(1))
		return cas.Outcome{Delta: d}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Origin.Start.Equal(start) {
		t.Fatalf("commits %+v, want one whose origin starts at %v", got, start)
	}
}

// Stats counts the snapshots held and the versions they pin, and the
// commits that waited at the VIP gate.
func TestStoreStats(t *testing.T) {
	arb := vip.New(vip.Config{})
	defer arb.Close()
	s := cas.New(cas.Config{Arbiter: arb})
	commit := func(v int64) {
		t.Helper()
		var d cas.Delta
		d.Set(P("domain.x"), enc(v))
		if _, err := s.Commit(bg, s.Version(), nil, d, cas.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st != (cas.Stats{}) {
		t.Fatalf("empty store: %+v", st)
	}
	a := s.Snapshot()
	b := s.Snapshot()
	commit(1)
	c := s.Snapshot()
	commit(2)
	st := s.Stats()
	if st.Version != 2 || st.Snapshots != 3 || st.Epochs != 2 || st.Paths != 1 {
		t.Errorf("three snapshots over two old versions: %+v", st)
	}
	a.Release()
	b.Release()
	c.Release()
	if st := s.Stats(); st.Snapshots != 0 || st.Epochs != 0 {
		t.Errorf("after release: %+v", st)
	}
	tk, err := arb.Acquire(bg, "holder", []string{"domain.x"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var d cas.Delta
		d.Set(P("domain.x"), enc(3))
		if _, err := s.Commit(bg, s.Version(), nil, d, cas.Options{}); err != nil {
			t.Error(err)
		}
	}()
	for s.Stats().GateWaits == 0 {
		time.Sleep(time.Millisecond)
	}
	tk.Release()
	<-done
	if st := s.Stats(); st.GateWaits != 1 || st.Version != 3 {
		t.Errorf("after one commit waited for a ticket: %+v", st)
	}
}
