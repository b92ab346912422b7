package cas

import (
	"context"
	"testing"
	"time"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// A first attempt that queued for a ticket is timed from its run, not
// from when Execute began: the wait is the holder's, and counting it
// would make every later call on the key queue (QueueAbove).
func TestQueueWaitIsNotRunTime(t *testing.T) {
	arb := vip.New(vip.Config{HotFor: time.Minute})
	defer arb.Close()
	s := New(Config{Arbiter: arb})
	r := &Runner{Store: s, Arbiter: arb, QueueAbove: 500 * time.Microsecond}
	p := contract.MustParse("domain.k")
	c, err := contract.New("inc", []contract.Path{p}, []contract.Path{p}, contract.Pure)
	if err != nil {
		t.Fatal(err)
	}
	held, err := arb.Acquire(context.Background(), "other", []string{string(p)})
	if err != nil {
		t.Fatal(err)
	}
	const wait = 50 * time.Millisecond
	go func() {
		time.Sleep(wait)
		held.Release()
	}()
	const mean = time.Millisecond // above QueueAbove: the first attempt queues
	r.runNS.Store(int64(mean))
	rep, err := r.Execute(context.Background(), Invocation{Contract: c, Run: func(context.Context, *Snapshot, int) (Outcome, error) {
		return Outcome{Delta: Delta{{Path: p, Op: contract.OpSet, Value: []byte{1}}}}, nil
	}})
	if err != nil || !rep.VIP || rep.Attempts != 1 {
		t.Fatalf("%+v %v: want one attempt, queued for a ticket", rep, err)
	}
	// The run took microseconds: the mean moves down by about an eighth.
	// Timed from Execute's start it would have moved up by wait/8.
	if got := time.Duration(r.runNS.Load()); got >= mean {
		t.Fatalf("moving mean %v after a run that waited %v for a ticket, want below %v", got, wait, mean)
	}
}

// A run's time goes into the moving mean, and Origin.Start is when
// Execute began, on the wall clock and the monotonic one.
func TestRunTimeAndStart(t *testing.T) {
	arb := vip.New(vip.Config{})
	defer arb.Close()
	var got []Commit
	s := New(Config{Arbiter: arb, Committed: func(c Commit) { got = append(got, c) }})
	r := &Runner{Store: s, Arbiter: arb, QueueAbove: time.Hour}
	p := contract.MustParse("domain.k")
	c, err := contract.New("inc", []contract.Path{p}, []contract.Path{p}, contract.Pure)
	if err != nil {
		t.Fatal(err)
	}
	const run = 20 * time.Millisecond
	before := time.Now()
	if _, err := r.Execute(context.Background(), Invocation{Contract: c, Run: func(context.Context, *Snapshot, int) (Outcome, error) {
		time.Sleep(run)
		return Outcome{Delta: Delta{{Path: p, Op: contract.OpSet, Value: []byte{1}}}}, nil
	}}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if m := time.Duration(r.runNS.Load()); m < run/8 || m > after.Sub(before)/8+time.Microsecond {
		t.Fatalf("moving mean %v after one run of %v, want about %v", m, run, run/8)
	}
	if len(got) != 1 || got[0].Origin.Start.Before(before) || got[0].Origin.Start.After(after) {
		t.Fatalf("origin %+v, want a start between %v and %v", got, before, after)
	}
	if d := after.Sub(got[0].Origin.Start); d < run {
		t.Fatalf("start %v before the end: the run took %v", d, run)
	}
}
