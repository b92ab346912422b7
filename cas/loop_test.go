package cas_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// TestExecuteWithDoneContext: an invocation whose caller has already
// gone runs nothing, and its error names no conflict that did not happen.
func TestExecuteWithDoneContext(t *testing.T) {
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s}
	c := mustContract(t, "p", []string{"domain.x"}, []string{"domain.x"}, contract.Pure)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	var runs atomic.Int32
	_, err := r.Call(ctx, c, "", func(ctx context.Context, in cas.View) (cas.Outcome, error) {
		runs.Add(1)
		return incr(t, "domain.x")(ctx, in)
	})
	var re *cas.RunError
	if !errors.As(err, &re) || !errors.Is(err, context.Canceled) || re.Attempts != 0 || runs.Load() != 0 {
		t.Fatalf("got %v after %d runs", err, runs.Load())
	}
	if strings.Contains(err.Error(), "last") {
		t.Fatalf("error names a last conflict: %v", err)
	}
}

// TestSleepErrorStops: an error from Runner.Sleep ends the invocation
// with it, and the last conflict.
func TestSleepErrorStops(t *testing.T) {
	s := cas.New(cas.Config{})
	stop := errors.New("stop")
	r := &cas.Runner{Store: s, VIPAfter: -1, Sleep: func(context.Context, time.Duration) error { return stop }}
	c := mustContract(t, "p", []string{"domain.x"}, []string{"domain.x"}, contract.Pure)
	var runs atomic.Int32
	_, err := r.Call(bg, c, "", interfere(t, s, "domain.x", &runs))
	var re *cas.RunError
	if !errors.As(err, &re) || !errors.Is(err, stop) || re.Attempts != 1 || runs.Load() != 1 || !strings.Contains(err.Error(), "last: cas: conflict") {
		t.Fatalf("got %v after %d runs", err, runs.Load())
	}
}

// TestTicketAfterVIPAfterConflicts: after exactly VIPAfter conflicts the
// next attempt runs under a ticket, without backing off first.
func TestTicketAfterVIPAfterConflicts(t *testing.T) {
	for _, after := range []int{1, 2} {
		arb := vip.New(vip.Config{})
		s := cas.New(cas.Config{Arbiter: arb})
		sleeps := 0
		r := &cas.Runner{Store: s, Arbiter: arb, VIPAfter: after, Sleep: func(context.Context, time.Duration) error {
			sleeps++
			return nil
		}}
		c := mustContract(t, "p", []string{"domain.x"}, []string{"domain.x"}, contract.Pure)
		var runs atomic.Int32
		lose := interfere(t, s, "domain.x", &runs)
		rep, err := r.Call(bg, c, "", func(ctx context.Context, in cas.View) (cas.Outcome, error) {
			if int(runs.Load()) < after {
				return lose(ctx, in)
			}
			runs.Add(1)
			return incr(t, "domain.x")(ctx, in)
		})
		arb.Close()
		if err != nil || rep.Attempts != after+1 || rep.Conflicts != after || !rep.VIP {
			t.Fatalf("VIPAfter %d: %+v, %v; want a VIP commit at attempt %d", after, rep, err, after+1)
		}
		if sleeps != after-1 {
			t.Fatalf("VIPAfter %d: %d backoffs, want %d (none before the ticket)", after, sleeps, after-1)
		}
	}
}

// TestQueuedCallerGivesUp: an invocation queued for a ticket behind a
// holder stops with its context and never runs.
func TestQueuedCallerGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arb := vip.New(vip.Config{Lease: time.Hour})
		defer arb.Close()
		s := cas.New(cas.Config{Arbiter: arb})
		holder, err := arb.Acquire(bg, "holder", []string{"domain.k"})
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Release()
		r := &cas.Runner{Store: s, Arbiter: arb, QueueAbove: -1}
		c := mustContract(t, "p", []string{"domain.k"}, []string{"domain.k"}, contract.Pure)
		ctx, cancel := context.WithTimeout(bg, time.Second)
		defer cancel()
		var runs atomic.Int32
		_, err = r.Call(ctx, c, "", func(ctx context.Context, in cas.View) (cas.Outcome, error) {
			runs.Add(1)
			return incr(t, "domain.k")(ctx, in)
		})
		if !errors.Is(err, context.DeadlineExceeded) || runs.Load() != 0 || s.Version() != 0 {
			t.Fatalf("got %v after %d runs, version %d", err, runs.Load(), s.Version())
		}
	})
}

// TestRepeatDoesNotWaitAtTheGate: a commit whose op id is in the window
// applies nothing, so it returns at once even while a ticket it overlaps
// is held: the first outcome for the same call, a conflict for another.
func TestRepeatDoesNotWaitAtTheGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arb := vip.New(vip.Config{Lease: time.Hour})
		defer arb.Close()
		s := cas.New(cas.Config{Arbiter: arb})
		d := cas.Delta{{Path: "domain.x", Op: contract.OpSet, Value: []byte("1")}}
		first, err := s.Commit(bg, 0, nil, d, cas.Options{OpID: "op", OpDigest: digest("a"), Result: []byte("r")})
		if err != nil {
			t.Fatal(err)
		}
		holder, err := arb.Acquire(bg, "holder", []string{"domain"})
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Release()
		ctx, cancel := context.WithTimeout(bg, time.Second)
		defer cancel()
		res, err := s.Commit(ctx, s.Version(), nil, d, cas.Options{OpID: "op", OpDigest: digest("a")})
		if err != nil || !res.Duplicate || res.Version != first.Version || string(res.Result) != "r" {
			t.Fatalf("repeat under a held ticket: %+v, %v", res, err)
		}
		if _, err := s.Commit(ctx, s.Version(), nil, d, cas.Options{OpID: "op", OpDigest: digest("b")}); !errors.Is(err, cas.ErrOpIDConflict) {
			t.Fatalf("other call under a held ticket: %v, want ErrOpIDConflict", err)
		}
	})
}
