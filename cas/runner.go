package cas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// Defaults for Runner.
const (
	DefaultVIPAfter    = 3
	DefaultMaxAttempts = 32
	// DefaultQueueAbove is Runner.QueueAbove's default: well above what a
	// ticket's hand-off from holder to holder costs (a goroutine wake-up,
	// a few microseconds), well below a run on another process (a
	// dispatch's round trip, 80 us or more).
	DefaultQueueAbove = 20 * time.Microsecond
)

// Runner drives invocations to commit: snapshot, run, check the contract,
// commit; on conflict, back off and run again on a fresh snapshot; after
// VIPAfter conflicts, hold a VIP ticket so the next attempt cannot lose.
// Where the process runs is the Attempt's business: in this process (Call)
// or on a remote worker (the supervisor). A Runner is safe for concurrent
// use; its fields must not change after the first call.
type Runner struct {
	Store *Store
	// Engine, when set, replaces Store: attempts read a View of their
	// inputs and commit through it. VIP tickets are then the Engine's
	// business (Tickets, when it implements it): Arbiter must be nil.
	Engine  Engine
	Arbiter *vip.Arbiter // nil: no tickets, only backoff
	// Mode is the commits' validation. In Training an attempt's snapshot
	// is released before its commit and no ticket is ever taken.
	Mode    Mode
	Backoff vip.Backoff
	// VIPAfter is the number of conflicts after which an invocation takes a
	// ticket; default DefaultVIPAfter, negative for never.
	VIPAfter int
	// MaxAttempts bounds the runs of one invocation; default
	// DefaultMaxAttempts.
	MaxAttempts int
	// Optimistic keeps first attempts optimistic even when their keys are
	// contended (a ticket is held on them). By default such an attempt
	// queues for a ticket at once when runs are slow (QueueAbove), which
	// turns a hot key into a FIFO of single-attempt commits instead of a
	// storm of conflicts.
	Optimistic bool
	// QueueAbove is how long this Runner's runs must take (a moving mean
	// of its recent attempts' Run) for a first attempt on contended keys
	// to queue at once: queueing saves the run a conflict would waste,
	// but every commit of the queue then waits for a hand-off from the
	// last holder; when a run is cheaper than that hand-off, running
	// optimistically commits more per second. Default DefaultQueueAbove;
	// negative: queue whatever a run costs. Invocations that conflicted
	// VIPAfter times take a ticket whatever it is.
	QueueAbove time.Duration
	// Sleep waits between attempts; default a timer that honors ctx.
	Sleep func(ctx context.Context, d time.Duration) error

	runNS atomic.Int64 // the moving mean of Run's duration, for QueueAbove
}

// mayQueue reports whether a first attempt of this Runner may queue for
// a ticket at all (joinQueue): not when Optimistic, without tickets, or
// in Training.
func (r *Runner) mayQueue() bool {
	return !r.Optimistic && r.vipAfter() >= 0 && r.Mode != Training && (r.Arbiter != nil || r.tickets() != nil)
}

// queueAbove is QueueAbove or its default.
func (r *Runner) queueAbove() time.Duration {
	if r.QueueAbove == 0 {
		return DefaultQueueAbove
	}
	return r.QueueAbove
}

// ran adds one run's duration to the moving mean (weight 1/8). Concurrent
// updates may drop one another's: a mean, not an account.
func (r *Runner) ran(d time.Duration) {
	old := r.runNS.Load()
	r.runNS.Store(old + (int64(d)-old)/8)
}

// Attempt runs a process once on snap (attempt counts from 1). It may be
// called several times for one invocation and must have no effect outside
// the Outcome it returns. It must not keep snap after returning.
type Attempt func(ctx context.Context, snap *Snapshot, attempt int) (Outcome, error)

// Outcome is what one run of a process produced.
type Outcome struct {
	Delta  Delta
	Result []byte // returned to the caller, and stored with the op id
	// Reads, when ReadsKnown, is what the run actually read, each path
	// covered by a declared input: the commit validates these instead of
	// every declared input, so runs that read different keys under one
	// input (domain.counters.a, domain.counters.b) do not conflict. A
	// read outside the inputs is a contract violation.
	Reads      []contract.Path
	ReadsKnown bool
	// Signals are transient events committed with the delta but never
	// applied (Options.Signals); checked against the contract like it.
	Signals Delta
	// System are writes of the caller's own (the supervisor's records of
	// a workflow run, outbox messages): committed in the same transaction
	// as Delta but not checked against the process's contract.
	System Delta
}

// Invocation is one request to run a process until it commits.
type Invocation struct {
	Contract contract.Contract
	OpID     string   // optional; makes the commit idempotent
	OpDigest OpDigest // optional; binds OpID to this call (see OpDigest)
	Owner    string   // who runs it, for the arbiter's traces (the supervisor: exec-N)
	Fence    Fence    // optional; the Engine's condition on every commit (Options.Fence)
	Run      Attempt
	// Start is when the invocation began, passed on in Origin (the commit
	// log's durations); zero means when Execute is called. A caller that
	// read the clock already saves a read.
	Start time.Time
	// Prior counts the attempts made before Execute, outside it (First):
	// Execute goes on from them.
	Prior Prior

	// view, set by Call instead of Run, runs in a View of the attempt's
	// snapshot under Contract: no closure per call.
	view Func
}

// clockBase is the origin of monoNow's readings.
var clockBase = time.Now()

// monoNow reads the monotonic clock alone. time.Now reads the wall clock
// too: a second read, and on a virtual machine each read can cost as much
// as a tenth of a hot key's commit.
func monoNow() time.Duration { return time.Since(clockBase) }

// newLoop is the state of an invocation that begins now: its start is
// inv.Start, or now on the monotonic clock, a reading that the first
// attempt's timing reuses (fresh).
func newLoop(r *Runner, inv Invocation, rep Report) loop {
	l := loop{r: r, inv: inv, rep: rep}
	if inv.Start.IsZero() {
		l.began, l.fresh = monoNow(), true
	}
	return l
}

// started is when the invocation began, for Origin.
func (l *loop) started() time.Time {
	if !l.inv.Start.IsZero() {
		return l.inv.Start
	}
	return clockBase.Add(l.began)
}

// Prior is what attempts of an invocation made before Execute: its first
// attempt is then Attempts+1, and its conflicts count from Conflicts
// (towards VIPAfter and the reports).
type Prior struct{ Attempts, Conflicts int }

// Report describes a committed invocation.
type Report struct {
	Version   Version // the commit's version (the snapshot's, for an empty delta)
	Attempts  int
	Conflicts int
	VIP       bool // the commit was made under a VIP ticket
	Duplicate bool // the op id had committed before; nothing ran
	ReadOnly  bool // the delta was empty: nothing was committed
	Result    []byte
}

// RunError is an invocation that did not commit.
type RunError struct {
	Process   string
	Attempts  int
	Conflicts int
	Err       error // the cause: a process error, a contract violation, ctx's error, or the last conflict
}

func (e *RunError) Error() string {
	return fmt.Sprintf("cas: process %q: %d attempts (%d conflicts): %v", e.Process, e.Attempts, e.Conflicts, e.Err)
}

func (e *RunError) Unwrap() error { return e.Err }

// ErrRetryLimit is the cause when every allowed attempt conflicted.
var ErrRetryLimit = errors.New("cas: retry limit reached")

// ErrEngineArbiter is returned by a Runner with both an Engine and an
// Arbiter: a local ticket would not gate the Engine's commits.
var ErrEngineArbiter = errors.New("cas: a Runner with an Engine takes no Arbiter")

// ErrStrictArbiter is returned by a Strict Runner whose Arbiter is not
// strict: its tickets would not stop the commits that break the holder's.
var ErrStrictArbiter = errors.New("cas: strict mode needs a strict vip.Arbiter")

func (r *Runner) vipAfter() int {
	if r.VIPAfter == 0 {
		return DefaultVIPAfter
	}
	return r.VIPAfter
}

func (r *Runner) maxAttempts() int {
	if r.MaxAttempts <= 0 {
		return DefaultMaxAttempts
	}
	return r.MaxAttempts
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Execute runs inv until its delta commits, it fails for a reason other
// than a conflict, the retry limit is reached, or ctx ends. Every error is a
// *RunError that says how many attempts were made and wraps the cause.
func (r *Runner) Execute(ctx context.Context, inv Invocation) (Report, error) {
	if r.Mode == Strict && r.Arbiter != nil && !r.Arbiter.Strict() {
		return Report{}, &RunError{Process: inv.Contract.Name, Err: ErrStrictArbiter}
	}
	if r.Engine != nil && r.Arbiter != nil {
		return Report{}, &RunError{Process: inv.Contract.Name, Err: ErrEngineArbiter}
	}
	v, res, ok, err := r.lookupOp(ctx, inv.OpID, inv.OpDigest)
	if err != nil {
		return Report{}, &RunError{Process: inv.Contract.Name, Err: err}
	}
	if ok {
		return Report{Version: v, Duplicate: true, Result: res}, nil
	}
	l := newLoop(r, inv, Report{Attempts: inv.Prior.Attempts, Conflicts: inv.Prior.Conflicts})
	defer func() { l.ticket.Release() }() // l.ticket is set later: not `defer l.ticket.Release()`
	defer func() {
		if l.held != nil {
			l.held.Release()
		}
	}()
	err = l.run(ctx)
	if l.inv.view != nil && l.r.Engine == nil && l.snap != nil {
		viewSnaps.Put(l.snap) // released: every attempt releases its snapshot
	}
	if err != nil {
		return Report{}, &RunError{Process: inv.Contract.Name, Attempts: l.rep.Attempts, Conflicts: l.rep.Conflicts, Err: err}
	}
	return l.rep, nil
}

func (r *Runner) lookupOp(ctx context.Context, id string, d OpDigest) (Version, []byte, bool, error) {
	if r.Engine != nil {
		if id == "" {
			return 0, nil, false, nil
		}
		return r.Engine.LookupOp(ctx, id, d)
	}
	return r.Store.LookupOp(id, d)
}

// loop is the state of one Execute.
type loop struct {
	snap   *Snapshot // renewed for each attempt
	r      *Runner
	inv    Invocation
	rep    Report
	ticket *vip.Ticket
	held   EngineTicket // the Engine's ticket (Tickets)
	keys   []string
	// began is when the invocation began on the monotonic clock (monoNow),
	// when inv.Start is zero; fresh while it is also the start of the
	// next attempt's run, nothing having waited since.
	began time.Duration
	fresh bool
}

// tickets is the Engine's Tickets, or nil: then tickets come from the
// Arbiter, if any. Only Smart mode takes them (Strict would need every
// commit gated).
func (r *Runner) tickets() Tickets {
	if t, ok := r.Engine.(Tickets); ok && r.Mode == Smart {
		return t
	}
	return nil
}

// valid reports whether the invocation holds a ticket now.
func (l *loop) valid() bool {
	return l.ticket.Valid() || (l.held != nil && l.held.Valid())
}

func (l *loop) run(ctx context.Context) error {
	var seq *vip.Sequence // made at the first backoff: most invocations never conflict
	sleep := l.r.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	var last error
	if l.rep.Conflicts > 0 && !l.wantTicket() {
		// Prior conflicts (First): back off as after one in this loop.
		l.fresh = false
		seq = l.r.Backoff.Start()
		if err := sleep(ctx, seq.Next()); err != nil {
			return err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return withLast(err, last)
		}
		if err := l.maybeTicket(ctx); err != nil {
			return withLast(err, last)
		}
		l.rep.Attempts++
		err := l.attempt(ctx)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		last = err
		if err := l.conflicted(err); err != nil {
			return err
		}
		if l.valid() || l.wantTicket() {
			continue // a ticket holder, or one about to queue, needs no backoff
		}
		if seq == nil {
			seq = l.r.Backoff.Start()
		}
		if err := sleep(ctx, seq.Next()); err != nil {
			return withLast(err, last)
		}
	}
}

// conflicted counts the conflict err of the latest attempt and heats its
// keys; it returns the error that ends the invocation when that attempt
// was the last one allowed, else nil (try again).
func (l *loop) conflicted(err error) error {
	l.rep.Conflicts++
	if l.r.Arbiter != nil && l.r.vipAfter() >= 0 {
		l.r.Arbiter.Heat(hotKeys(err, l.keySet()))
	}
	if t := l.r.tickets(); t != nil && l.r.vipAfter() >= 0 {
		t.Heat(hotKeys(err, l.keySet()))
	}
	if l.rep.Attempts >= l.r.maxAttempts() {
		return fmt.Errorf("%w: %w", ErrRetryLimit, err)
	}
	return nil
}

func withLast(err, last error) error {
	if last == nil {
		return err
	}
	return fmt.Errorf("%w (last: %v)", err, last)
}

// hotKeys are the paths a conflict names (the ones that changed), or
// the whole key set when it names none (strict mode, an old snapshot).
func hotKeys(err error, keys []string) []string {
	var ce *ConflictError
	if !errors.As(err, &ce) || len(ce.Paths) == 0 {
		return keys
	}
	out := make([]string, len(ce.Paths))
	for i, p := range ce.Paths {
		out[i] = string(p)
	}
	return out
}

func (l *loop) wantTicket() bool {
	k := l.r.vipAfter()
	return (l.r.Arbiter != nil || l.r.tickets() != nil) && k >= 0 && l.rep.Conflicts >= k && l.r.Mode != Training
}

// joinQueue reports whether a first attempt should queue for a ticket
// because its keys already have a holder (its optimistic commit would wait
// at the VIP gate for the holder and then conflict with the holder's
// write, so running it first only wastes a run), or lost a commit within
// the arbiter's HotFor (a burst of callers on a hot key would collide),
// provided this Runner's runs cost more than QueueAbove.
func (l *loop) joinQueue() bool {
	if l.rep.Attempts > 0 || !l.r.mayQueue() {
		return false
	}
	if q := l.r.queueAbove(); q > 0 && time.Duration(l.r.runNS.Load()) <= q {
		return false // runs cost less than the queue's hand-offs
	}
	if t := l.r.tickets(); t != nil {
		return t.Contended(l.keySet())
	}
	return l.r.Arbiter != nil && l.r.Arbiter.Contended(l.keySet())
}

func (l *loop) keySet() []string {
	if l.keys == nil {
		for _, p := range l.inv.Contract.Keys() {
			l.keys = append(l.keys, string(p))
		}
	}
	return l.keys
}

// maybeTicket takes a ticket once the invocation has conflicted enough or
// its keys are contended, or takes a new one if a lease ran out.
func (l *loop) maybeTicket(ctx context.Context) error {
	if l.valid() || !(l.wantTicket() || l.joinQueue()) {
		return nil
	}
	l.fresh = false // the wait for the ticket is not the run's
	l.keySet()
	if t := l.r.tickets(); t != nil {
		if l.held != nil {
			l.held.Release() // its lease was lost
		}
		h, err := t.Acquire(ctx, l.inv.Owner, l.keys)
		if err != nil {
			return fmt.Errorf("vip ticket: %w", err)
		}
		l.held = h
		return nil
	}
	t, err := l.r.Arbiter.Acquire(ctx, l.inv.Owner, l.keys)
	if err != nil {
		return fmt.Errorf("vip ticket: %w", err)
	}
	l.ticket = t
	return nil
}

// attempt is one snapshot → run → check → commit.
func (l *loop) attempt(ctx context.Context) error {
	switch {
	case l.r.Engine != nil:
		sn, err := l.r.Engine.View(ctx, l.inv.Contract.Inputs)
		if err != nil {
			return err
		}
		l.snap = sn
	case l.snap == nil && l.inv.view != nil:
		l.snap = viewSnaps.Get().(*Snapshot) // zero, or released by an earlier call
		l.r.Store.Take(l.snap)
	case l.snap == nil:
		l.snap = l.r.Store.Snapshot()
	default:
		l.snap.Renew()
	}
	snap := l.snap
	defer snap.Release()
	timed := l.r.timed()
	var began time.Duration
	if timed {
		began = l.began
		if !l.fresh || l.r.Engine != nil { // an Engine's View may be a round trip
			began = monoNow()
		}
	}
	l.fresh = false
	var out Outcome
	var err error
	if l.inv.view != nil {
		out, err = l.inv.view(ctx, View{snap: snap, c: l.inv.Contract, take: snap.takes})
	} else {
		out, err = l.inv.Run(ctx, snap, l.rep.Attempts)
	}
	if timed {
		l.r.ran(monoNow() - began)
	}
	return l.commit(ctx, snap, out, err, false)
}

// timed reports whether runs are timed: the mean is read by joinQueue
// only.
func (r *Runner) timed() bool { return r.mayQueue() && r.queueAbove() > 0 }

// commit checks the outcome of a run on snap (err: the run's own) and
// commits it; with noWait, a commit that would wait for a VIP ticket
// fails with ErrWouldWait.
func (l *loop) commit(ctx context.Context, snap *Snapshot, out Outcome, err error, noWait bool) error {
	snapVer := snap.Version()
	if l.r.Mode == Training {
		snap.Release() // the inputs were read; nothing validates against them
	}
	if err != nil {
		return err
	}
	for _, w := range out.Delta {
		if err := l.inv.Contract.CheckWrite(w.Path, w.Op); err != nil {
			return err
		}
	}
	for _, w := range out.Signals {
		if err := l.inv.Contract.CheckWrite(w.Path, w.Op); err != nil {
			return err
		}
	}
	if out.ReadsKnown { // a read-only run is held to its contract too
		for _, p := range out.Reads {
			if err := l.inv.Contract.CheckRead(p); err != nil {
				return err
			}
		}
	}
	if len(out.Delta) == 0 && len(out.System) == 0 && len(out.Signals) == 0 {
		l.rep.Version, l.rep.Result, l.rep.ReadOnly = snapVer, out.Result, true
		return nil
	}
	delta := out.Delta
	if len(out.System) > 0 {
		delta = append(slices.Clip(out.Delta), out.System...)
	}
	reads := l.inv.Contract.Inputs
	if out.ReadsKnown {
		reads = out.Reads
	}
	vip := l.valid()
	opts := Options{
		Mode:     l.r.Mode,
		OpID:     l.inv.OpID,
		OpDigest: l.inv.OpDigest,
		Result:   out.Result,
		Ticket:   l.ticket,
		Held:     l.held,
		Fence:    l.inv.Fence,
		Signals:  out.Signals,
		Origin:   Origin{Process: l.inv.Contract.Name, Attempts: l.rep.Attempts, Conflicts: l.rep.Conflicts, VIP: vip, Start: l.started()},
		NoWait:   noWait,
	}
	var res Result
	if l.r.Engine != nil {
		res, err = l.r.Engine.Commit(ctx, snapVer, reads, delta, opts)
	} else {
		res, err = l.r.Store.Commit(ctx, snapVer, reads, delta, opts)
	}
	if err != nil {
		return err
	}
	l.rep.Version, l.rep.Duplicate, l.rep.VIP = res.Version, res.Duplicate, vip
	l.rep.Result = out.Result
	if res.Duplicate {
		l.rep.Result = res.Result
	}
	return nil
}
