package cas_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// Ported from Theus: 20 concurrent increments end at exactly 20.
func TestConcurrentIncrements(t *testing.T) {
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s, Arbiter: vip.New(vip.Config{})}
	c := mustContract(t, "counter.add", []string{"domain.counter"}, []string{"domain.counter"}, contract.Pure)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := r.Call(bg, c, "", incr(t, "domain.counter")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if v, _ := get(t, s, "domain.counter"); v != 20 {
		t.Fatalf("counter = %d, want 20", v)
	}
}

// Ported from Theus: every contract violation is rejected with the path
// named, and nothing is committed.
func TestContractViolationsCommitNothing(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		op       contract.Op
		read     bool
		wantRule error
	}{
		{name: "undeclared write", path: "domain.forbidden", op: contract.OpSet, wantRule: contract.ErrUndeclaredWrite},
		{name: "undeclared delete", path: "domain.forbidden", op: contract.OpDelete, wantRule: contract.ErrUndeclaredWrite},
		{name: "const write", path: "domain.allowed.const_rate", op: contract.OpSet, wantRule: contract.ErrConstWrite},
		{name: "log overwrite", path: "domain.allowed.log_ev", op: contract.OpSet, wantRule: contract.ErrLogNotAppend},
		{name: "append outside log", path: "domain.allowed.x", op: contract.OpAppend, wantRule: contract.ErrAppendNotLog},
		{name: "undeclared read", path: "domain.secret", read: true, wantRule: contract.ErrUndeclaredRead},
		{name: "private read", path: "domain.allowed.internal_key", read: true, wantRule: contract.ErrPrivateRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := cas.New(cas.Config{})
			r := &cas.Runner{Store: s}
			c := mustContract(t, "fault.undeclared", []string{"domain.allowed"}, []string{"domain.allowed"}, contract.Pure)
			runs := 0
			_, err := r.Call(bg, c, "", func(_ context.Context, in cas.View) (cas.Outcome, error) {
				runs++
				var d cas.Delta
				d.Set(P("domain.allowed.ok"), enc(1)) // a legal write beside the bad one
				if tt.read {
					if _, _, err := in.Get(P(tt.path)); err != nil {
						return cas.Outcome{}, err
					}
					return cas.Outcome{Delta: d}, nil
				}
				return cas.Outcome{Delta: append(d, cas.Write{Path: P(tt.path), Op: tt.op, Value: enc(1)})}, nil
			})
			if !errors.Is(err, tt.wantRule) || !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("error = %v; want %v naming %s", err, tt.wantRule, tt.path)
			}
			var re *cas.RunError
			if !errors.As(err, &re) || re.Attempts != 1 || runs != 1 {
				t.Fatalf("a violation must not be retried: %v, runs %d", err, runs)
			}
			if s.Version() != 0 || s.Len() != 0 {
				t.Fatal("something was committed")
			}
		})
	}
}

// A process error is returned as is, after one attempt, with nothing
// committed: from a Func given to Call, and from an Invocation's Run
// given to Execute (two paths in an attempt).
func TestProcessErrorNotRetried(t *testing.T) {
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s}
	boom := errors.New("insufficient_funds")
	c := mustContract(t, "bank.transfer", []string{"domain.accounts"}, []string{"domain.accounts"}, contract.Pure)
	_, err := r.Call(bg, c, "", func(context.Context, cas.View) (cas.Outcome, error) { return cas.Outcome{}, boom })
	if !errors.Is(err, boom) || s.Version() != 0 {
		t.Fatalf("Call: got %v", err)
	}
	runs := 0
	rep, err := r.Execute(bg, cas.Invocation{Contract: c, Run: func(context.Context, *cas.Snapshot, int) (cas.Outcome, error) {
		runs++
		return cas.Outcome{}, boom
	}})
	if !errors.Is(err, boom) || s.Version() != 0 || runs != 1 {
		t.Fatalf("Execute: got %v, %+v, %d runs", err, rep, runs)
	}
}

// interfere makes every attempt lose: it commits to p behind the
// process's back, after its snapshot.
func interfere(t *testing.T, s *cas.Store, p string, runs *atomic.Int32) cas.Func {
	return func(context.Context, cas.View) (cas.Outcome, error) {
		runs.Add(1)
		set(t, s, p, 1)
		var d cas.Delta
		d.Set(P(p), enc(2))
		return cas.Outcome{Delta: d}, nil
	}
}

// The retry limit is honored and the error says how many attempts were
// made and why.
func TestRetryLimit(t *testing.T) {
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s, MaxAttempts: 4, VIPAfter: -1, Sleep: func(context.Context, time.Duration) error { return nil }}
	c := mustContract(t, "p", []string{"domain.x"}, []string{"domain.x"}, contract.Pure)
	var runs atomic.Int32
	_, err := r.Call(bg, c, "", interfere(t, s, "domain.x", &runs))
	var re *cas.RunError
	if !errors.As(err, &re) || re.Attempts != 4 || re.Conflicts != 4 || runs.Load() != 4 {
		t.Fatalf("got %v (runs %d)", err, runs.Load())
	}
	if !errors.Is(err, cas.ErrRetryLimit) || !errors.Is(err, cas.ErrConflict) || !strings.Contains(err.Error(), "4 attempts") {
		t.Fatalf("error does not say why: %v", err)
	}
}

// The context's deadline is honored between attempts, and the error keeps
// the last conflict.
func TestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := cas.New(cas.Config{})
		r := &cas.Runner{Store: s, MaxAttempts: 1 << 20, VIPAfter: -1,
			Backoff: vip.Backoff{Initial: time.Millisecond, Max: time.Millisecond, NoJitter: true}}
		c := mustContract(t, "p", []string{"domain.x"}, []string{"domain.x"}, contract.Pure)
		ctx, cancel := context.WithTimeout(bg, 10500*time.Microsecond)
		defer cancel()
		var runs atomic.Int32
		start := time.Now()
		_, err := r.Call(ctx, c, "", interfere(t, s, "domain.x", &runs))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "last: cas: conflict") {
			t.Fatalf("got %v", err)
		}
		if el := time.Since(start); el != 10500*time.Microsecond {
			t.Fatalf("returned after %v, not at the deadline", el)
		}
		if n := runs.Load(); n != 11 {
			t.Fatalf("ran %d times in 10.5 ms with 1 ms backoff; want 11", n)
		}
	})
}

// With 16 goroutines on one hot key, every invocation commits within
// K conflicts + 1 attempt, and at most one ticket covers a path at any
// instant (checked on every grant and end, while the test runs).
func TestHotKeyBoundedAttempts(t *testing.T) {
	const (
		goroutines = 16
		perG       = 40
		k          = 3
	)
	var (
		mu      sync.Mutex
		holders = map[string]int{}
		grants  int
	)
	arb := vip.New(vip.Config{Lease: time.Minute, Trace: func(ev vip.Event) {
		mu.Lock()
		defer mu.Unlock()
		if ev.Kind == vip.Granted {
			grants++
			for _, key := range ev.Keys {
				for held, n := range holders {
					if n > 0 && (strings.HasPrefix(held+".", key+".") || strings.HasPrefix(key+".", held+".")) {
						t.Errorf("ticket %d on %s granted while %s is held", ev.Ticket, key, held)
					}
				}
			}
		}
		for _, key := range ev.Keys {
			if ev.Kind == vip.Granted {
				holders[key]++
			} else {
				holders[key]--
			}
		}
	}})
	s := cas.New(cas.Config{Arbiter: arb})
	r := &cas.Runner{Store: s, Arbiter: arb, VIPAfter: k}
	c := mustContract(t, "counter.add", []string{"domain.counter"}, []string{"domain.counter"}, contract.Pure)
	body := incr(t, "domain.counter")
	slow := func(ctx context.Context, in cas.View) (cas.Outcome, error) {
		out, err := body(ctx, in)
		time.Sleep(20 * time.Microsecond) // widen the window between snapshot and commit
		return out, err
	}
	var vipCommits, worst atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range perG {
				rep, err := r.Call(bg, c, "", slow)
				if err != nil {
					t.Error(err)
					return
				}
				if rep.Attempts > k+1 {
					t.Errorf("committed after %d attempts (%d conflicts); bound is %d", rep.Attempts, rep.Conflicts, k+1)
				}
				if rep.VIP {
					vipCommits.Add(1)
				}
				for {
					w := worst.Load()
					if int64(rep.Attempts) <= w || worst.CompareAndSwap(w, int64(rep.Attempts)) {
						break
					}
				}
			}
		})
	}
	wg.Wait()
	if v, _ := get(t, s, "domain.counter"); v != goroutines*perG {
		t.Fatalf("counter = %d, want %d", v, goroutines*perG)
	}
	if grants == 0 || vipCommits.Load() == 0 {
		t.Fatalf("no VIP ticket fired (grants %d): the test did not exercise contention", grants)
	}
	if arb.Active() {
		t.Fatal("tickets left held")
	}
	t.Logf("VIP commits %d of %d, grants %d, worst attempts %d", vipCommits.Load(), goroutines*perG, grants, worst.Load())
}

// A ticket holder that never finishes is revoked when its lease runs out,
// and the commits it blocked proceed; its own late commit then conflicts.
func TestStuckTicketHolderExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const lease = 100 * time.Millisecond
		arb := vip.New(vip.Config{Lease: lease})
		s := cas.New(cas.Config{Arbiter: arb})
		tk, err := arb.Acquire(bg, "stuck-worker", []string{"domain.x"})
		if err != nil {
			t.Fatal(err)
		}
		snap := s.Snapshot()
		defer snap.Release()
		start := time.Now()
		var d cas.Delta
		d.Set(P("domain.x.y"), enc(1))
		if _, err := s.Commit(bg, s.Version(), Ps("domain.x"), d, cas.Options{}); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el != lease {
			t.Fatalf("the blocked commit went through after %v; want the lease, %v", el, lease)
		}
		if tk.Valid() {
			t.Fatal("ticket still valid after its lease")
		}
		var late cas.Delta
		late.Set(P("domain.x.y"), enc(2))
		if _, err := s.Commit(bg, snap.Version(), Ps("domain.x"), late, cas.Options{Ticket: tk}); !errors.Is(err, cas.ErrConflict) {
			t.Fatalf("late holder must conflict: %v", err)
		}
	})
}

// A commit waiting at the VIP gate gives up with its context.
func TestGateHonorsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arb := vip.New(vip.Config{Lease: time.Hour})
		s := cas.New(cas.Config{Arbiter: arb})
		tk, _ := arb.Acquire(bg, "w1", []string{"domain"})
		defer tk.Release()
		ctx, cancel := context.WithTimeout(bg, time.Second)
		defer cancel()
		_, err := s.Commit(ctx, 0, nil, cas.Delta{{Path: P("domain.x"), Op: contract.OpSet}}, cas.Options{})
		if !errors.Is(err, context.DeadlineExceeded) || s.Version() != 0 {
			t.Fatalf("got %v", err)
		}
	})
}

// Strict mode: a ticket holds back every commit, and a strict runner
// refuses a smart arbiter.
func TestStrictRunner(t *testing.T) {
	s := cas.New(cas.Config{})
	c := mustContract(t, "p", []string{"domain.x"}, []string{"domain.x"}, contract.Pure)
	r := &cas.Runner{Store: s, Mode: cas.Strict, Arbiter: vip.New(vip.Config{})}
	if _, err := r.Call(bg, c, "", incr(t, "domain.x")); !errors.Is(err, cas.ErrStrictArbiter) {
		t.Fatalf("got %v", err)
	}
	arb := vip.New(vip.Config{Strict: true})
	s = cas.New(cas.Config{Arbiter: arb})
	r = &cas.Runner{Store: s, Mode: cas.Strict, Arbiter: arb}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if _, err := r.Call(bg, c, "", incr(t, "domain.x")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if v, _ := get(t, s, "domain.x"); v != 160 {
		t.Fatalf("x = %d", v)
	}
}

// An invocation with an op id runs its commit once, even when repeated
// concurrently; repeats get the first result back.
func TestRunnerOpIDOnce(t *testing.T) {
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s, Arbiter: vip.New(vip.Config{})}
	c := mustContract(t, "counter.add", []string{"domain.counter"}, []string{"domain.counter"}, contract.Pure)
	var wg sync.WaitGroup
	var dups atomic.Int32
	for range 8 {
		wg.Go(func() {
			rep, err := r.Call(bg, c, "same-op", func(ctx context.Context, in cas.View) (cas.Outcome, error) {
				out, err := incr(t, "domain.counter")(ctx, in)
				out.Result = []byte("done")
				return out, err
			})
			if err != nil || string(rep.Result) != "done" {
				t.Errorf("%+v %v", rep, err)
			}
			if rep.Duplicate {
				dups.Add(1)
			}
		})
	}
	wg.Wait()
	if v, _ := get(t, s, "domain.counter"); v != 1 || dups.Load() != 7 {
		t.Fatalf("counter = %d, duplicates %d; want 1 and 7", v, dups.Load())
	}
}

// TestJoinQueueOnContendedKeys: while a ticket is held on a key, a new
// invocation on it queues for a ticket before its first run (and so runs
// once, after the holder), unless the Runner is Optimistic.
func TestJoinQueueOnContendedKeys(t *testing.T) {
	for _, optimistic := range []bool{false, true} {
		arb := vip.New(vip.Config{})
		s := cas.New(cas.Config{Arbiter: arb})
		r := &cas.Runner{Store: s, Arbiter: arb, Optimistic: optimistic, QueueAbove: -1}
		c, _ := contract.New("inc", Ps("domain.k"), Ps("domain.k"), contract.Pure)
		holder, err := arb.Acquire(bg, "holder", []string{"domain.k"})
		if err != nil {
			t.Fatal(err)
		}
		var runs atomic.Int32
		done := make(chan cas.Report, 1)
		go func() {
			rep, err := r.Call(bg, c, "", func(ctx context.Context, in cas.View) (cas.Outcome, error) {
				runs.Add(1)
				var d cas.Delta
				d.Set(P("domain.k"), enc(1))
				return cas.Outcome{Delta: d}, nil
			})
			if err != nil {
				t.Error(err)
			}
			done <- rep
		}()
		time.Sleep(20 * time.Millisecond)
		if got := runs.Load(); optimistic != (got > 0) {
			t.Fatalf("optimistic=%v: %d runs while the key was held", optimistic, got)
		}
		holder.Release()
		rep := <-done
		if !optimistic && (rep.Attempts != 1 || !rep.VIP) {
			t.Fatalf("queued invocation: %+v, want one VIP attempt", rep)
		}
		arb.Close()
	}
}

// A run that reports what it read is validated on those paths only: a
// commit under the same declared input but on another key does not
// conflict with it; one on a key it read does; a reported read outside
// the inputs is a violation and commits nothing.
func TestReportedReads(t *testing.T) {
	c := mustContract(t, "counter.add", []string{"domain.counters"}, []string{"domain.counters"}, contract.Pure)
	for _, tt := range []struct {
		name      string
		known     bool
		reads     []string
		other     string // committed by someone else during the first attempt
		attempts  int
		readOnly  bool // the run writes nothing
		violation bool
	}{
		{name: "declared inputs", other: "domain.counters.b", attempts: 2},
		{name: "other key", known: true, reads: []string{"domain.counters.a"}, other: "domain.counters.b", attempts: 1},
		{name: "a key it read", known: true, reads: []string{"domain.counters.b"}, other: "domain.counters.b", attempts: 2},
		{name: "subtree", known: true, reads: []string{"domain.counters"}, other: "domain.counters.b", attempts: 2},
		{name: "outside", known: true, reads: []string{"domain.secret"}, other: "domain.counters.b", violation: true},
		{name: "outside, read-only", known: true, reads: []string{"domain.secret"}, other: "domain.counters.b", readOnly: true, violation: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := cas.New(cas.Config{})
			r := &cas.Runner{Store: s}
			rep, err := r.Execute(bg, cas.Invocation{Contract: c, Run: func(_ context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
				if attempt == 1 {
					set(t, s, tt.other, 7)
				}
				var d cas.Delta
				if !tt.readOnly {
					d.Set(P("domain.counters.a"), enc(1))
				}
				return cas.Outcome{Delta: d, Reads: Ps(tt.reads...), ReadsKnown: tt.known}, nil
			}})
			if tt.violation {
				if !errors.Is(err, contract.ErrUndeclaredRead) {
					t.Fatalf("err = %v, want an undeclared read", err)
				}
				if v, ok := get(t, s, "domain.counters.a"); ok {
					t.Fatalf("committed %d after a violation", v)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Attempts != tt.attempts {
				t.Fatalf("attempts = %d, want %d", rep.Attempts, tt.attempts)
			}
		})
	}
}

// After a conflict on a key, the next invocation on it queues for a
// ticket at once (the key is hot), so it commits as VIP on its first run;
// one on another key stays optimistic.
func TestHotKeyQueuesAtOnce(t *testing.T) {
	arb := vip.New(vip.Config{HotFor: time.Minute})
	defer arb.Close()
	s := cas.New(cas.Config{Arbiter: arb})
	r := &cas.Runner{Store: s, Arbiter: arb}
	c := mustContract(t, "inc", []string{"domain.k"}, []string{"domain.k"}, contract.Pure)
	first := true
	rep, err := r.Execute(bg, cas.Invocation{Contract: c, Run: func(ctx context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
		time.Sleep(time.Millisecond) // a run worth saving: far above QueueAbove
		if first {
			first = false
			set(t, s, "domain.k", 7) // someone else commits meanwhile: a conflict
		}
		var d cas.Delta
		d.Set(P("domain.k"), enc(1))
		return cas.Outcome{Delta: d}, nil
	}})
	if err != nil || rep.Conflicts != 1 {
		t.Fatalf("%+v %v: want one conflict", rep, err)
	}
	if rep, err := r.Call(bg, c, "", incr(t, "domain.k")); err != nil || !rep.VIP || rep.Attempts != 1 {
		t.Fatalf("an invocation on the hot key: %+v %v, want one VIP attempt", rep, err)
	}
	other := mustContract(t, "inc", []string{"domain.j"}, []string{"domain.j"}, contract.Pure)
	if rep, err := r.Call(bg, other, "", incr(t, "domain.j")); err != nil || rep.VIP {
		t.Fatalf("an invocation on a cold key: %+v %v, want no ticket", rep, err)
	}
}

// TestCheapRunsDoNotQueue: a Runner whose runs take less than QueueAbove
// runs a first attempt on a hot key at once instead of queueing behind a
// ticket (a FIFO of holders would commit slower than conflicts cost);
// once its runs get slow, it queues again. An invocation that conflicted
// VIPAfter times still takes a ticket.
func TestCheapRunsDoNotQueue(t *testing.T) {
	arb := vip.New(vip.Config{HotFor: time.Minute})
	defer arb.Close()
	s := cas.New(cas.Config{Arbiter: arb})
	r := &cas.Runner{Store: s, Arbiter: arb, QueueAbove: 500 * time.Microsecond}
	c := mustContract(t, "inc", []string{"domain.k"}, []string{"domain.k"}, contract.Pure)
	conflictOnce := func(pause time.Duration) cas.Attempt {
		first := true
		return func(ctx context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
			time.Sleep(pause)
			if first {
				first = false
				set(t, s, "domain.k", 7)
			}
			var d cas.Delta
			d.Set(P("domain.k"), enc(1))
			return cas.Outcome{Delta: d}, nil
		}
	}
	// Cheap runs: the key is hot, the first attempt is optimistic anyway.
	if _, err := r.Execute(bg, cas.Invocation{Contract: c, Run: conflictOnce(0)}); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Call(bg, c, "", incr(t, "domain.k")); err != nil || rep.VIP || rep.Attempts != 1 {
		t.Fatalf("cheap runs on a hot key: %+v %v, want one attempt without a ticket", rep, err)
	}
	// Slow runs (the mean moves by an eighth of each; the key stays hot
	// for HotFor): the next queues.
	slow := incr(t, "domain.k")
	for range 16 {
		if _, err := r.Call(bg, c, "", func(ctx context.Context, in cas.View) (cas.Outcome, error) {
			time.Sleep(2 * time.Millisecond)
			return slow(ctx, in)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := r.Call(bg, c, "", incr(t, "domain.k")); err != nil || !rep.VIP || rep.Attempts != 1 {
		t.Fatalf("slow runs on a hot key: %+v %v, want one VIP attempt", rep, err)
	}
}

// TestCheapRunsStillGetTickets: however cheap its runs, an invocation
// that keeps conflicting takes a ticket after VIPAfter conflicts.
func TestCheapRunsStillGetTickets(t *testing.T) {
	arb := vip.New(vip.Config{})
	defer arb.Close()
	s := cas.New(cas.Config{Arbiter: arb})
	r := &cas.Runner{Store: s, Arbiter: arb, VIPAfter: 2, Sleep: func(context.Context, time.Duration) error { return nil }}
	c := mustContract(t, "inc", []string{"domain.k"}, []string{"domain.k"}, contract.Pure)
	rep, err := r.Execute(bg, cas.Invocation{Contract: c, Run: func(ctx context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
		if attempt <= 2 {
			set(t, s, "domain.k", int64(attempt)) // another commit each time: a conflict
		}
		var d cas.Delta
		d.Set(P("domain.k"), enc(1))
		return cas.Outcome{Delta: d}, nil
	}})
	if err != nil || rep.Conflicts != 2 || !rep.VIP || rep.Attempts != 3 {
		t.Fatalf("%+v %v: want two conflicts, then a VIP commit", rep, err)
	}
}
