package cas_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// firstInc is inv's first attempt run outside Execute: it reads the
// counter at snap and returns the increment.
func firstInc(t *testing.T, snap *cas.Snapshot, p string) cas.Outcome {
	t.Helper()
	var n int64
	if e, ok := snap.Get(P(p)); ok {
		n = dec(t, e.Value)
	}
	var d cas.Delta
	d.Set(P(p), enc(n+1))
	return cas.Outcome{Delta: d}
}

func counterInvocation(t *testing.T) cas.Invocation {
	c := mustContract(t, "counter.add", []string{"domain.counter"}, []string{"domain.counter"}, contract.Pure)
	return cas.Invocation{Contract: c, Owner: "t", Run: func(_ context.Context, snap *cas.Snapshot, _ int) (cas.Outcome, error) {
		return firstInc(t, snap, "domain.counter"), nil
	}}
}

// TestFirstCommits: a first attempt run outside Execute commits through
// First, which reports it as Execute would.
func TestFirstCommits(t *testing.T) {
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s, Arbiter: vip.New(vip.Config{})}
	inv := counterInvocation(t)
	if !r.Outside(inv) {
		t.Fatal("Outside refused a plain invocation")
	}
	snap := s.Snapshot()
	rep, again, err := r.First(bg, inv, snap, firstInc(t, snap, "domain.counter"), nil, time.Millisecond)
	if err != nil || again || rep.Attempts != 1 || rep.Conflicts != 0 || rep.Version != 1 {
		t.Fatalf("First: %+v again=%v err=%v", rep, again, err)
	}
	if v, _ := get(t, s, "domain.counter"); v != 1 {
		t.Fatalf("counter = %d", v)
	}
	// A read-only outcome commits nothing and reports the snapshot.
	snap = s.Snapshot()
	rep, again, err = r.First(bg, inv, snap, cas.Outcome{Result: []byte("1")}, nil, 0)
	if err != nil || again || !rep.ReadOnly || rep.Version != 1 || s.Version() != 1 {
		t.Fatalf("read-only First: %+v again=%v err=%v", rep, again, err)
	}
	// The run's own error and a contract violation end the invocation.
	boom := errors.New("boom")
	_, again, err = r.First(bg, inv, s.Snapshot(), cas.Outcome{}, boom, 0)
	var re *cas.RunError
	if again || !errors.Is(err, boom) || !errors.As(err, &re) || re.Attempts != 1 {
		t.Fatalf("a failed run: again=%v err=%v", again, err)
	}
	var bad cas.Delta
	bad.Set(P("domain.other"), enc(1))
	_, again, err = r.First(bg, inv, s.Snapshot(), cas.Outcome{Delta: bad}, nil, 0)
	if again || !errors.Is(err, contract.ErrUndeclaredWrite) || s.Version() != 1 {
		t.Fatalf("a violation: again=%v err=%v version %d", again, err, s.Version())
	}
}

// TestFirstConflictGoesOn: a first attempt that conflicts applies
// nothing and goes on in Execute, which counts it: the second attempt
// commits, reported as 2 attempts and 1 conflict.
func TestFirstConflictGoesOn(t *testing.T) {
	s := cas.New(cas.Config{})
	var sleeps int
	r := &cas.Runner{Store: s, Arbiter: vip.New(vip.Config{}), Sleep: func(context.Context, time.Duration) error { sleeps++; return nil }}
	inv := counterInvocation(t)
	snap := s.Snapshot()
	out := firstInc(t, snap, "domain.counter")
	set(t, s, "domain.counter", 10) // another writer, after the snapshot
	rep, again, err := r.First(bg, inv, snap, out, nil, 0)
	if err != nil || !again || rep.Attempts != 1 || rep.Conflicts != 1 {
		t.Fatalf("First after a conflicting write: %+v again=%v err=%v", rep, again, err)
	}
	if v, _ := get(t, s, "domain.counter"); v != 10 {
		t.Fatalf("the conflicting attempt applied: counter = %d", v)
	}
	var attempts []int
	inv.Prior = cas.Prior{Attempts: rep.Attempts, Conflicts: rep.Conflicts}
	run := inv.Run
	inv.Run = func(ctx context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
		attempts = append(attempts, attempt)
		return run(ctx, snap, attempt)
	}
	rep, err = r.Execute(bg, inv)
	if err != nil || rep.Attempts != 2 || rep.Conflicts != 1 || len(attempts) != 1 || attempts[0] != 2 {
		t.Fatalf("Execute after First: %+v %v, runs %v", rep, err, attempts)
	}
	if sleeps != 1 {
		t.Fatalf("Execute backed off %d times after the prior conflict, want once", sleeps)
	}
	if v, _ := get(t, s, "domain.counter"); v != 11 {
		t.Fatalf("counter = %d, want 11", v)
	}
	// With one attempt allowed, the conflict ends the invocation.
	one := &cas.Runner{Store: s, MaxAttempts: 1}
	snap = s.Snapshot()
	out = firstInc(t, snap, "domain.counter")
	set(t, s, "domain.counter", 20)
	_, again, err = one.First(bg, counterInvocation(t), snap, out, nil, 0)
	if again || !errors.Is(err, cas.ErrRetryLimit) {
		t.Fatalf("the last attempt allowed: again=%v err=%v", again, err)
	}
}

// TestFirstNeverWaits: a first attempt whose commit would wait for
// another's VIP ticket applies nothing and goes on in Execute, which
// waits for the ticket; a Store commit with NoWait fails ErrWouldWait.
func TestFirstNeverWaits(t *testing.T) {
	arb := vip.New(vip.Config{Lease: time.Hour})
	s := cas.New(cas.Config{Arbiter: arb})
	r := &cas.Runner{Store: s, Arbiter: arb}
	inv := counterInvocation(t)
	tk, err := arb.Acquire(bg, "holder", []string{"domain.counter"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(bg, 0, nil, cas.Delta{{Path: P("domain.counter"), Op: contract.OpSet, Value: enc(5)}}, cas.Options{NoWait: true}); !errors.Is(err, cas.ErrWouldWait) {
		t.Fatalf("a NoWait commit under another's ticket: %v", err)
	}
	snap := s.Snapshot()
	done := make(chan struct{})
	var rep cas.Report
	var again bool
	go func() {
		defer close(done)
		rep, again, err = r.First(bg, inv, snap, firstInc(t, snap, "domain.counter"), nil, 0)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("First waited for the ticket")
	}
	if err != nil || !again || rep.Attempts != 0 || rep.Conflicts != 0 || s.Version() != 0 {
		t.Fatalf("First under another's ticket: %+v again=%v err=%v version %d", rep, again, err, s.Version())
	}
	inv.Prior = cas.Prior{Attempts: rep.Attempts}
	res := make(chan cas.Report, 1)
	go func() {
		rep, err := r.Execute(bg, inv)
		if err != nil {
			t.Error(err)
		}
		res <- rep
	}()
	time.Sleep(20 * time.Millisecond)
	tk.Release()
	if rep := <-res; rep.Attempts != 1 {
		t.Fatalf("after a commit that would have waited: %d attempts reported, want 1 (as if it had waited)", rep.Attempts)
	}
	if v, _ := get(t, s, "domain.counter"); v != 1 {
		t.Fatalf("counter = %d, want 1", v)
	}
}

// TestOutside: what must run in Execute from its first attempt.
func TestOutside(t *testing.T) {
	s := cas.New(cas.Config{})
	inv := counterInvocation(t)
	plain := &cas.Runner{Store: s}
	withID := inv
	withID.OpID, withID.OpDigest = "op-1", cas.OpDigest{1}
	strict := &cas.Runner{Store: s, Mode: cas.Strict, Arbiter: vip.New(vip.Config{})}
	for name, ok := range map[string]bool{
		"plain":                      plain.Outside(inv),
		"a new op id":                plain.Outside(withID),
		"strict, non-strict arbiter": !strict.Outside(inv),
	} {
		if !ok {
			t.Errorf("%s: wrong answer", name)
		}
	}
	if _, err := plain.Execute(bg, withID); err != nil {
		t.Fatal(err)
	}
	other := withID
	other.OpDigest = cas.OpDigest{2}
	if plain.Outside(withID) || plain.Outside(other) {
		t.Error("Outside took an op id the store knows (a repeat, or another call's)")
	}
}

// TestFirstOpIDCommittedMeanwhile: an op id that another call commits
// after Outside let this one out is found by First's commit, which
// applies nothing and reports the first commit, as Execute would.
func TestFirstOpIDCommittedMeanwhile(t *testing.T) {
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s, Arbiter: vip.New(vip.Config{})}
	inv := counterInvocation(t)
	inv.OpID, inv.OpDigest = "op-1", cas.OpDigest{1}
	if !r.Outside(inv) {
		t.Fatal("Outside refused a new op id")
	}
	snap := s.Snapshot()
	out := firstInc(t, snap, "domain.counter")
	out.Result = []byte("2")
	first := inv
	first.Run = func(_ context.Context, snap *cas.Snapshot, _ int) (cas.Outcome, error) {
		o := firstInc(t, snap, "domain.counter")
		o.Result = []byte("1")
		return o, nil
	}
	if _, err := r.Execute(bg, first); err != nil { // the same call, committed meanwhile
		t.Fatal(err)
	}
	rep, again, err := r.First(bg, inv, snap, out, nil, 0)
	if err != nil || again || !rep.Duplicate || rep.Version != 1 || string(rep.Result) != "1" {
		t.Fatalf("First after the op id committed: %+v again=%v err=%v; want the first commit (version 1, result 1), duplicate", rep, again, err)
	}
	if v, _ := get(t, s, "domain.counter"); v != 1 || s.Version() != 1 {
		t.Fatalf("counter %d at version %d: the duplicate applied", v, s.Version())
	}
}
