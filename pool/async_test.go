package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/internal/outbuf"
	"github.com/theus-run/theus/protocol"
)

type outcome struct {
	res   *protocol.Result
	err   error
	after bool // the completion's After ran
}

// dispatchFunc sends a dispatch with DispatchFunc and waits for its
// completion, which must come exactly once.
func dispatchFunc(t *testing.T, p *Pool, ctx context.Context, name, args string) outcome {
	t.Helper()
	got := make(chan outcome, 2)
	call := p.DispatchFunc(ctx, &protocol.Dispatch{Process: name, Attempt: 1, Args: []byte(args)}, completeInto(got))
	defer context.AfterFunc(ctx, call.Cancel)() // the caller's part: Cancel when ctx ends
	var o outcome
	select {
	case o = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no completion")
	}
	select {
	case o2 := <-got:
		t.Fatalf("completed twice: %+v, then %+v", o, o2)
	case <-time.After(50 * time.Millisecond):
	}
	return o
}

// CompletionFunc is a function as a Completion.
type CompletionFunc func(res *protocol.Result, blocks *heavy.Lease, err error, after *After)

// Complete calls f.
func (f CompletionFunc) Complete(res *protocol.Result, blocks *heavy.Lease, err error, after *After) {
	f(res, blocks, err, after)
}

// completeInto is a Completion that sends its outcome to got once its
// After ran.
func completeInto(got chan<- outcome) Completion {
	return CompletionFunc(func(res *protocol.Result, blocks *heavy.Lease, err error, after *After) {
		blocks.Close()
		o := &outcomeLater{outcome{res: res, err: err}, got}
		if after == nil {
			o.Later()
			return
		}
		after.Do(o)
	})
}

// outcomeLater sends its outcome at the end of the batch.
type outcomeLater struct {
	o   outcome
	got chan<- outcome
}

func (l *outcomeLater) Later() {
	l.o.after = true
	l.got <- l.o
}

// TestDispatchFunc: a dispatch without a goroutine waiting completes once,
// on the reader, with the result, then runs what it left for the end of
// the batch; so do many at once.
func TestDispatchFunc(t *testing.T) {
	p := start(t, 2, nil)
	o := dispatchFunc(t, p, context.Background(), "counter.add", `{"by":5}`)
	if o.err != nil || o.res.Err != nil || string(o.res.Result) != "5" || !o.after {
		t.Fatalf("counter.add: %+v", o)
	}
	const n = 500
	got := make(chan outcome, 2*n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range n {
		p.DispatchFunc(ctx, &protocol.Dispatch{Process: "noop", Attempt: 1}, completeInto(got))
	}
	for i := range n {
		select {
		case o := <-got:
			if o.err != nil || o.res.Err != nil || !o.after {
				t.Fatalf("dispatch %d: %+v", i, o)
			}
		case <-ctx.Done():
			t.Fatalf("%d of %d completed", i, n)
		}
	}
	select {
	case o := <-got:
		t.Fatalf("a completion too many: %+v", o)
	case <-time.After(50 * time.Millisecond):
	}
	var inflight int64
	for _, w := range p.WorkerStatus() {
		inflight += w.InFlight
	}
	if inflight != 0 {
		t.Fatalf("%d places still reserved", inflight)
	}
}

// TestDispatchFuncCrash: the worker's death completes the dispatch with
// ErrWorkerCrashed, and the worker is replaced.
func TestDispatchFuncCrash(t *testing.T) {
	p := start(t, 1, nil)
	before := p.PIDs()
	if o := dispatchFunc(t, p, context.Background(), "fault.crash", ""); !errors.Is(o.err, ErrWorkerCrashed) {
		t.Fatalf("err = %v, want ErrWorkerCrashed", o.err)
	}
	if o := dispatchFunc(t, p, context.Background(), "noop", ""); o.err != nil || o.res.Err != nil {
		t.Fatalf("after restart: %+v", o)
	}
	if after := p.PIDs(); len(after) != 1 || after[0] == before[0] {
		t.Fatalf("pids before %v after %v", before, after)
	}
}

// TestDispatchFuncClosed: a DispatchFunc on a closed pool completes
// once, with ErrClosed, sending nothing.
func TestDispatchFuncClosed(t *testing.T) {
	p := start(t, 1, nil)
	p.Close(context.Background())
	if o := dispatchFunc(t, p, context.Background(), "noop", ""); !errors.Is(o.err, ErrClosed) {
		t.Fatalf("a dispatch on a closed pool: %+v, want ErrClosed", o)
	}
}

// TestDispatchFuncHung: past its context's deadline a dispatch whose
// process ignores the Cancel (Call.Cancel, by the caller) kills its
// worker after KillGrace and completes with the context's error; one
// whose context ended before it was sent completes with that error too.
func TestDispatchFuncHung(t *testing.T) {
	p := start(t, 1, func(c *Config) { c.KillGrace = 100 * time.Millisecond })
	before := p.PIDs()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if o := dispatchFunc(t, p, ctx, "fault.sleep", `{"ms":60000}`); !errors.Is(o.err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", o.err)
	}
	if o := dispatchFunc(t, p, context.Background(), "noop", ""); o.err != nil || o.res.Err != nil {
		t.Fatalf("after kill: %+v", o)
	}
	if after := p.PIDs(); after[0] == before[0] {
		t.Fatal("the hung worker was not replaced")
	}
	gone, stop := context.WithCancel(context.Background())
	stop()
	if o := dispatchFunc(t, p, gone, "noop", ""); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("a dispatch for a caller gone already: %+v", o)
	}
}

// TestDispatchFuncDeathInFlight: every dispatch in flight when its worker
// dies completes once, with an error, not on the dying worker's lock.
func TestDispatchFuncDeathInFlight(t *testing.T) {
	p := start(t, 1, nil)
	const n = 20
	var wg sync.WaitGroup
	var failed atomic.Int32
	got := make(chan outcome, 2*n)
	for range n {
		p.DispatchFunc(context.Background(), &protocol.Dispatch{Process: "fault.sleep", Attempt: 1, Args: []byte(`{"ms":60000}`)}, completeInto(got))
	}
	wg.Go(func() {
		for range n {
			o := <-got
			if !errors.Is(o.err, ErrWorkerCrashed) {
				t.Errorf("a dispatch in flight at the death: %+v", o)
			}
			failed.Add(1)
		}
	})
	time.Sleep(100 * time.Millisecond)
	p.mu.Lock()
	pr := p.slots[0].cur
	p.mu.Unlock()
	pr.kill(errors.New("killed by the test"))
	wg.Wait()
	if failed.Load() != n {
		t.Fatalf("%d of %d completed", failed.Load(), n)
	}
}

// TestTryDispatchFunc: with every worker at MaxInFlight, TryDispatchFunc
// does nothing and says so; with room, it dispatches.
func TestTryDispatchFunc(t *testing.T) {
	p := start(t, 1, func(c *Config) { c.MaxInFlight = 1 })
	got := make(chan outcome, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, ok := p.TryDispatchFunc(ctx, &protocol.Dispatch{Process: "fault.sleep", Attempt: 1, Args: []byte(`{"ms":300}`)}, completeInto(got), nil); !ok {
		t.Fatal("an idle worker had no room")
	}
	if _, ok := p.TryDispatchFunc(ctx, &protocol.Dispatch{Process: "noop", Attempt: 1}, completeInto(got), nil); ok {
		t.Fatal("a full worker took another dispatch")
	}
	if o := <-got; o.err != nil || o.res.Err != nil {
		t.Fatalf("the first dispatch: %+v", o)
	}
	if _, ok := p.TryDispatchFunc(ctx, &protocol.Dispatch{Process: "noop", Attempt: 1}, completeInto(got), nil); !ok {
		t.Fatal("no room once the worker was free again")
	}
	if o := <-got; o.err != nil || o.res.Err != nil {
		t.Fatalf("the second dispatch: %+v", o)
	}
}

// TestWakesDeferTheWake: a dispatch sent with a Wakes reaches a parked
// worker only once Wake is called.
func TestWakesDeferTheWake(t *testing.T) {
	p := start(t, 1, nil)
	if o := dispatchFunc(t, p, context.Background(), "noop", ""); o.err != nil { // the worker is up, then parks
		t.Fatal(o.err)
	}
	time.Sleep(50 * time.Millisecond)
	var w Wakes
	got := make(chan outcome, 8)
	for range 3 {
		if _, ok := p.TryDispatchFunc(context.Background(), &protocol.Dispatch{Process: "noop", Attempt: 1}, completeInto(got), &w); !ok {
			t.Fatal("no room")
		}
	}
	select {
	case o := <-got:
		t.Fatalf("completed before the wake: %+v", o)
	case <-time.After(200 * time.Millisecond):
	}
	w.Wake()
	for i := range 3 {
		select {
		case o := <-got:
			if o.err != nil || o.res.Err != nil {
				t.Fatalf("dispatch %d: %+v", i, o)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of 3 completed after the wake", i)
		}
	}
}

// TestHungSaysWhatTheRingHolds: a dispatch to a stopped worker (SIGSTOP:
// it reads nothing) is still in its ring past its deadline; the worker is
// killed as hung, and the cause the log shows says that its ring holds
// bytes it has not read. Its wake-up was paid, so nothing is mended.
func TestHungSaysWhatTheRingHolds(t *testing.T) {
	var log outbuf.Buffer
	p, pid := startParked(t, &log, func(c *Config) { c.KillGrace = 100 * time.Millisecond })
	stopProcess(t, pid)
	defer unix.Kill(pid, unix.SIGCONT) // should the test fail before the kill
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var w Wakes
	call, _ := tryDispatch(t, p, ctx, &protocol.Dispatch{Process: "noop", Attempt: 1}, &w)
	w.Wake()
	<-ctx.Done()
	call.Cancel() // the caller's part at its deadline
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(log.String(), "bytes unread") {
		if time.Now().After(deadline) {
			t.Fatalf("no worker down with its ring's backlog in the log:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "worker hung") {
		t.Fatalf("the backlog came without the hang:\n%s", log.String())
	}
	if n := p.LateWakes(); n != 0 || strings.Contains(log.String(), "woken late") {
		t.Fatalf("a wake-up that was paid counted as late (%d):\n%s", n, log.String())
	}
}

// TestLostWakeMendedAtTheDeadline: a dispatch published without a wake
// (a Wakes never woken: a lost wake-up, made on purpose) waits in the
// ring of a parked worker past its deadline. A grace after the Cancel
// the ring still owes the same wake-up: the worker is woken, not killed
// as hung, and the lost wake-up is counted and logged.
func TestLostWakeMendedAtTheDeadline(t *testing.T) {
	var log outbuf.Buffer
	p, pid := startParked(t, &log, func(c *Config) {
		c.KillGrace = 100 * time.Millisecond
		c.Heartbeat, c.HeartbeatTimeout = 10*time.Second, time.Minute // only the deadline looks
	})
	makesLateWakes(p)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var w Wakes // never woken
	call, got := tryDispatch(t, p, ctx, &protocol.Dispatch{Process: "noop", Attempt: 1}, &w)
	<-ctx.Done()
	call.Cancel()
	var o outcome
	select {
	case o = <-got: // woken, it drops the cancelled dispatch
	case <-time.After(30 * time.Second):
		t.Fatalf("the dispatch never ended:\n%s", log.String())
	}
	if n := p.LateWakes(); n != 1 {
		t.Fatalf("LateWakes = %d, want 1 (the dispatch: %+v, %v):\n%s", n, o.res, o.err, log.String())
	}
	if !strings.Contains(log.String(), `"found_by":"a dispatch's deadline"`) {
		t.Fatalf("the mend was not logged:\n%s", log.String())
	}
	time.Sleep(300 * time.Millisecond) // past a second grace
	if strings.Contains(log.String(), "worker hung") || p.PIDs()[0] != pid {
		t.Fatalf("a worker that was never woken was killed as hung:\n%s", log.String())
	}
}

// startParked starts a pool of one worker that logs to log (warnings
// and errors) with tune applied, runs a noop on it and waits until its
// ring reader parks; it returns the pool and the worker's pid.
func startParked(t *testing.T, log *outbuf.Buffer, tune func(*Config)) (*Pool, int) {
	t.Helper()
	p := start(t, 1, func(c *Config) {
		c.Log = zerolog.New(log).Level(zerolog.WarnLevel)
		tune(c)
	})
	if o := dispatchFunc(t, p, context.Background(), "noop", ""); o.err != nil {
		t.Fatal(o.err)
	}
	awaitParked(t, p)
	return p, p.PIDs()[0]
}

// TestDeadlineKillsWhenTheDebtWasPaid: a dispatch published without its
// wake-up is cancelled at its deadline, and the wake-up then comes within
// the grace; its process ignores the cancel. The debt seen at the cancel
// was paid, so the worker is killed as hung, and nothing counts as late.
func TestDeadlineKillsWhenTheDebtWasPaid(t *testing.T) {
	var log outbuf.Buffer
	p, _ := startParked(t, &log, func(c *Config) {
		c.KillGrace = 200 * time.Millisecond
		c.Heartbeat, c.HeartbeatTimeout = 10*time.Second, time.Minute // only the deadline looks
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var w Wakes
	call, got := tryDispatch(t, p, ctx, &protocol.Dispatch{Process: "fault.sleep", Args: []byte(`{"ms":60000}`), Attempt: 1}, &w)
	<-ctx.Done()
	call.Cancel()
	w.Wake() // late, by its caller: within the grace
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("the dispatch never ended:\n%s", log.String())
	}
	for wait := time.Now().Add(10 * time.Second); !strings.Contains(log.String(), "worker hung"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(wait) {
			t.Fatalf("the worker was not killed as hung:\n%s", log.String())
		}
	}
	if n := p.LateWakes(); n != 0 || strings.Contains(log.String(), "woken late") {
		t.Fatalf("a debt paid by its caller counted as late (%d):\n%s", n, log.String())
	}
}

// TestShortDebtsAreNotLate: wake-ups owed for less than a heartbeat are
// never paid by the heartbeat, however its looks fall.
func TestShortDebtsAreNotLate(t *testing.T) {
	var log outbuf.Buffer
	p, _ := startParked(t, &log, func(c *Config) { c.Heartbeat = 200 * time.Millisecond })
	for range 20 {
		var w Wakes
		_, got := tryDispatch(t, p, context.Background(), &protocol.Dispatch{Process: "noop", Attempt: 1}, &w)
		time.Sleep(40 * time.Millisecond) // a debt of a fifth of a heartbeat
		w.Wake()
		if o := <-got; o.err != nil {
			t.Fatal(o.err)
		}
	}
	if n := p.LateWakes(); n != 0 {
		t.Fatalf("%d debts shorter than a heartbeat paid as late:\n%s", n, log.String())
	}
}

// tryDispatch sends dp to a worker of p with TryDispatchFunc (w is not
// woken here: the test wakes it, or not), failing the test if no worker
// has room; the outcome comes on the channel.
func tryDispatch(t *testing.T, p *Pool, ctx context.Context, dp *protocol.Dispatch, w *Wakes) (Call, <-chan outcome) {
	t.Helper()
	got := make(chan outcome, 1)
	call, ok := p.TryDispatchFunc(ctx, dp, completeInto(got), w)
	if !ok {
		t.Fatal("no room")
	}
	return call, got
}

// awaitParked waits until p's first worker parks its ring reader, so that
// only a wake-up makes it read the next dispatch (a reader that is still
// polling, on a busy machine, would find it by itself).
func awaitParked(t *testing.T, p *Pool) {
	t.Helper()
	p.mu.Lock()
	pr := p.slots[0].cur
	p.mu.Unlock()
	for wait := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, parks := pr.rings.out.Backlog(); parks {
			return
		}
		if time.Now().After(wait) {
			t.Fatal("the worker's ring reader never parked")
		}
	}
}

// TestLateWakeMended: a dispatch published without its wake-up (a
// caller that never calls Wakes.Wake) is woken by the heartbeat, counted
// and logged, and its worker lives; dispatches whose caller wakes are
// never counted.
func TestLateWakeMended(t *testing.T) {
	var log outbuf.Buffer
	p, pid := startParked(t, &log, func(c *Config) { c.Heartbeat = 20 * time.Millisecond })
	makesLateWakes(p)
	var w Wakes
	for range 20 { // woken as they should be: nothing owed
		_, got := tryDispatch(t, p, context.Background(), &protocol.Dispatch{Process: "noop", Attempt: 1}, &w)
		w.Wake()
		if o := <-got; o.err != nil {
			t.Fatal(o.err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // heartbeats enough to see a debt
	if n := p.LateWakes(); n != 0 {
		t.Fatalf("%d late wakes for dispatches that were woken:\n%s", n, log.String())
	}
	awaitParked(t, p) // its poll has run out
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var never Wakes
	_, got := tryDispatch(t, p, ctx, &protocol.Dispatch{Process: "noop", Attempt: 1}, &never)
	select {
	case o := <-got:
		if o.err != nil || o.res.Err != nil {
			t.Fatalf("the dispatch woken late: %+v", o)
		}
	case <-ctx.Done():
		t.Fatalf("the dispatch never woken:\n%s", log.String())
	}
	// (Had the worker found it by itself, the wake-up would be owed all
	// the same, and counted: wait for the count either way.)
	for wait := time.Now().Add(10 * time.Second); p.LateWakes() == 0 && time.Now().Before(wait); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := p.LateWakes(); n != 1 {
		t.Fatalf("LateWakes = %d, want 1:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "worker woken late") {
		t.Fatalf("no error logged:\n%s", log.String())
	}
	if after := p.PIDs(); len(after) != 1 || after[0] != pid {
		t.Fatalf("the worker was replaced: %v, was %d", after, pid)
	}
}

// TestDispatchFuncOversized: a dispatch too large for a frame completes
// at once with bad_request, on the caller's goroutine, and spares the
// worker; its place in the worker is given back.
func TestDispatchFuncOversized(t *testing.T) {
	p := start(t, 1, func(c *Config) { c.MaxFrame = 64 << 10 })
	before := p.PIDs()
	got := make(chan outcome, 2)
	call := p.DispatchFunc(context.Background(), &protocol.Dispatch{Process: "noop", Args: make([]byte, 100<<10)}, completeInto(got))
	select {
	case o := <-got:
		if !errors.Is(o.err, protocol.ErrBadRequest) {
			t.Fatalf("err = %v, want bad_request", o.err)
		}
	default:
		t.Fatal("an oversized dispatch did not complete before DispatchFunc returned")
	}
	if call != (Call{}) {
		t.Fatal("a Call for a dispatch that was never sent")
	}
	if o := dispatchFunc(t, p, context.Background(), "noop", ""); o.err != nil || o.res.Err != nil {
		t.Fatalf("after: %+v", o)
	}
	if after := p.PIDs(); after[0] != before[0] || p.WorkerStatus()[0].Restarts != 0 {
		t.Fatal("the worker was replaced for a dispatch it never received")
	}
	if w := p.WorkerStatus()[0]; w.InFlight != 0 {
		t.Fatalf("%d places still reserved", w.InFlight)
	}
}

// TestCompletionMayReuseItsDispatch: once done has its outcome the
// dispatch is over, and done may reuse the Dispatch it was sent: the pool
// copies it before it files the call, which a worker's death completes
// at any moment after. Executes killed in flight, over and over, under
// the race detector.
func TestCompletionMayReuseItsDispatch(t *testing.T) {
	p := start(t, 1, func(c *Config) {
		c.Transport, c.RestartBackoff, c.MaxRestartBackoff = TransportSocket, 5*time.Millisecond, 20*time.Millisecond
	})
	for round := range 20 {
		var pr *proc
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if pr = procOf(p); pr != nil && pr.conn != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no worker came back")
			}
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 40 {
					dp := &protocol.Dispatch{Process: "fault.sleep", Attempt: 1, Args: []byte(`{"ms":60000}`)}
					p.DispatchFunc(context.Background(), dp, CompletionFunc(func(_ *protocol.Result, b *heavy.Lease, _ error, _ *After) {
						b.Close()
						*dp = protocol.Dispatch{Process: "reused"} // the dispatch is over
					}))
				}
			})
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		pr.kill(errors.New("killed by the test"))
		wg.Wait()
	}
}
