package deadline

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// held counts the contexts the Wheel holds.
func (w *Wheel) held() int {
	count := func(l *list) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.live)
	}
	n := 0
	for i := range w.shards {
		n += count(&w.shards[i].list)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for sc := range w.scopes {
		n += count(&sc.list)
	}
	return n
}

func newWheel(t *testing.T) *Wheel {
	w := New()
	t.Cleanup(w.Close)
	return w
}

// waitErr waits for ctx to end (waitDone) and fails t unless its Err is
// want.
func waitErr(t *testing.T, ctx context.Context, want error) {
	t.Helper()
	waitDone(t, ctx, 10*time.Second)
	if err := ctx.Err(); !errors.Is(err, want) {
		t.Fatalf("Err = %v, want %v", err, want)
	}
}

// waitDone fails t unless ctx ends within limit (far above any deadline
// the tests set: a miss means a deadline that never fires).
func waitDone(t *testing.T, ctx context.Context, limit time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(limit):
		t.Fatalf("not ended %s after it was due", limit)
	}
}

func TestDeadlineEndsContext(t *testing.T) {
	w := newWheel(t)
	start := time.Now()
	ctx := w.WithTimeout(context.Background(), 20*time.Millisecond)
	defer ctx.Cancel()
	if err := ctx.Err(); err != nil {
		t.Fatalf("Err before the deadline: %v", err)
	}
	if dl, ok := ctx.Deadline(); !ok || dl.Sub(start) < 20*time.Millisecond || dl.Sub(start) > time.Second {
		t.Fatalf("Deadline = %v, %v; want about 20ms after %v", dl, ok, start)
	}
	waitDone(t, ctx, 10*time.Second)
	if since := time.Since(start); since < 20*time.Millisecond {
		t.Fatalf("ended after %s, before its deadline", since)
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
	if n := w.held(); n != 0 {
		t.Fatalf("the wheel holds %d contexts after the deadline", n)
	}
	ctx.Cancel() // after the deadline: changes nothing
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err after a late cancel = %v, want DeadlineExceeded", err)
	}
}

func TestCancelReleases(t *testing.T) {
	w := newWheel(t)
	ctx := w.WithTimeout(context.Background(), time.Hour)
	if n := w.held(); n != 1 {
		t.Fatalf("the wheel holds %d contexts, want 1", n)
	}
	ctx.Cancel()
	ctx.Cancel() // twice is fine
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err = %v, want Canceled", err)
	}
	select {
	case <-ctx.Done():
	default:
		t.Fatal("Done not closed after cancel")
	}
	if n := w.held(); n != 0 {
		t.Fatalf("the wheel holds %d contexts after cancel", n)
	}
}

func TestParentEnds(t *testing.T) {
	w := newWheel(t)
	type key struct{}
	parent, stop := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	ctx := w.WithTimeout(parent, time.Hour)
	defer ctx.Cancel()
	if got := ctx.Value(key{}); got != "v" {
		t.Fatalf("Value = %v, want the parent's", got)
	}
	stop()
	waitDone(t, ctx, 10*time.Second)
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err = %v, want the parent's Canceled", err)
	}

	// A parent that ended already: the context is born ended.
	ctx2 := w.WithTimeout(parent, time.Hour)
	defer ctx2.Cancel()
	if err := ctx2.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("under an ended parent: Err = %v, want Canceled", err)
	}
	if n := w.held(); n != 1 { // ctx, still in until its cancel
		t.Fatalf("the wheel holds %d contexts, want 1", n)
	}
}

func TestParentDeadlineEarlier(t *testing.T) {
	w := newWheel(t)
	parent, stop := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer stop()
	pd, _ := parent.Deadline()
	ctx := w.WithTimeout(parent, time.Hour)
	defer ctx.Cancel()
	if dl, _ := ctx.Deadline(); !dl.Equal(pd) {
		t.Fatalf("Deadline = %v, want the parent's %v", dl, pd)
	}
	waitErr(t, ctx, context.DeadlineExceeded)
}

func TestNoTime(t *testing.T) {
	w := newWheel(t)
	for _, d := range []time.Duration{0, -time.Second} {
		ctx := w.WithTimeout(context.Background(), d)
		if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WithTimeout(%v): Err = %v, want DeadlineExceeded", d, err)
		}
		ctx.Cancel()
	}
	if n := w.held(); n != 0 {
		t.Fatalf("the wheel holds %d contexts", n)
	}
}

// TestDeadlinePast: WithDeadline with a deadline already past ends the
// context promptly (the sweep it wakes), with DeadlineExceeded.
func TestDeadlinePast(t *testing.T) {
	w := newWheel(t)
	long := w.WithTimeout(context.Background(), time.Hour) // the goroutine sleeps for the hour
	defer long.Cancel()
	time.Sleep(10 * time.Millisecond)
	at := time.Now().Add(-time.Second)
	ctx := w.WithDeadline(context.Background(), at)
	defer ctx.Cancel()
	if dl, _ := ctx.Deadline(); !dl.Equal(at) {
		t.Fatalf("Deadline = %v, want %v", dl, at)
	}
	waitErr(t, ctx, context.DeadlineExceeded)
}

// TestEarlierDeadlineWakes: the goroutine sleeps until an hour away; a
// context due sooner must wake it.
func TestEarlierDeadlineWakes(t *testing.T) {
	w := newWheel(t)
	long := w.WithTimeout(context.Background(), time.Hour)
	defer long.Cancel()
	time.Sleep(10 * time.Millisecond) // the goroutine is asleep for the hour
	ctx := w.WithTimeout(context.Background(), 10*time.Millisecond)
	defer ctx.Cancel()
	waitErr(t, ctx, context.DeadlineExceeded)
}

// TestDerivedStartsNoGoroutine: context.WithCancel under a wheel's
// context registers through its AfterFunc, and ends with it.
func TestDerivedStartsNoGoroutine(t *testing.T) {
	w := newWheel(t)
	ctx := w.WithTimeout(context.Background(), time.Hour)
	child, stopChild := context.WithCancel(ctx)
	defer stopChild()
	ctx.mu.Lock()
	n := len(ctx.afters)
	ctx.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d functions registered, want 1 (context.WithCancel did not use AfterFunc)", n)
	}
	ctx.Cancel()
	waitDone(t, child, 10*time.Second)

	// Registered after the end: runs at once; stop then reports false.
	ran := make(chan struct{})
	if stop := ctx.AfterFunc(func() { close(ran) }); stop() {
		t.Error("stop after the end reported true")
	}
	waitDone(t, doneCtx(ran), 10*time.Second)

	// Stopped before the end: never runs.
	ctx2 := w.WithTimeout(context.Background(), time.Hour)
	stop := ctx2.AfterFunc(func() { t.Error("a stopped function ran") })
	if !stop() {
		t.Error("stop before the end reported false")
	}
	ctx2.Cancel()
}

// doneCtx is a context whose Done is ch.
type doneCtx chan struct{}

func (d doneCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (d doneCtx) Done() <-chan struct{}       { return d }
func (d doneCtx) Err() error                  { return nil }
func (d doneCtx) Value(any) any               { return nil }

// TestManyInFlight: contexts with short random timeouts, some canceled
// first, from several goroutines at once. Each ends once, with the
// error of what came first, never before its deadline, and the wheel
// holds none afterwards.
func TestManyInFlight(t *testing.T) {
	w := newWheel(t)
	sc := w.Scope(context.Background())
	defer sc.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		var parent context.Context = context.Background()
		if g%2 == 1 {
			parent = sc
		}
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				d := time.Duration(r.IntN(3000)) * time.Microsecond
				start := time.Now()
				ctx := w.WithTimeout(parent, d)
				if r.IntN(3) == 0 {
					ctx.Cancel()
					if err := ctx.Err(); !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("after cancel: Err = %v", err)
					}
					continue
				}
				select {
				case <-ctx.Done():
				case <-time.After(10 * time.Second):
					t.Errorf("a %s deadline not reached in 10s", d)
				}
				if since := time.Since(start); since < d {
					t.Errorf("a %s deadline ended after %s", d, since)
				}
				if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Err = %v, want DeadlineExceeded", err)
				}
				ctx.Cancel()
			}
		})
	}
	wg.Wait()
	if n := w.held(); n != 0 {
		t.Fatalf("the wheel holds %d contexts", n)
	}
}

// BenchmarkWithTimeout: a request's context made and canceled before its
// deadline, under a parent that can be canceled (a client connection's),
// from every core: the Wheel's next to context.WithTimeout's, measured in
// the same run.
func BenchmarkWithTimeout(b *testing.B) {
	parent, stop := context.WithCancel(context.Background())
	defer stop()
	b.Run("impl=context", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx, cancel := context.WithTimeout(parent, 30*time.Second)
				_ = ctx.Done() // as a waiting select would: Done is made
				cancel()
			}
		})
	})
	b.Run("impl=wheel-scope", func(b *testing.B) {
		w := New()
		defer w.Close()
		sc := w.Scope(parent)
		defer sc.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx := w.WithTimeout(sc, 30*time.Second)
				_ = ctx.Done()
				ctx.Cancel()
			}
		})
	})
	b.Run("impl=wheel", func(b *testing.B) {
		w := New()
		defer w.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				ctx := w.WithTimeout(parent, 30*time.Second)
				_ = ctx.Done()
				ctx.Cancel()
			}
		})
	})
}

// TestScope: contexts under a Scope end when its parent ends (and those
// made after, at once), at their deadlines, and at cancel; Close ends
// the rest and the Wheel forgets the Scope.
func TestScope(t *testing.T) {
	w := newWheel(t)
	parent, stop := context.WithCancel(context.Background())
	sc := w.Scope(parent)
	short := w.WithTimeout(sc, 10*time.Millisecond)
	defer short.Cancel()
	var long []*Context
	for range 5 {
		c := w.WithTimeout(sc, time.Hour)
		defer c.Cancel()
		long = append(long, c)
	}
	done := w.WithTimeout(sc, time.Hour)
	done.Cancel()
	if err := done.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: Err = %v", err)
	}
	waitDone(t, short, 10*time.Second)
	if err := short.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short: Err = %v, want DeadlineExceeded", err)
	}
	if n := w.held(); n != 5 {
		t.Fatalf("the wheel holds %d contexts, want 5", n)
	}
	stop()
	for i, c := range long {
		waitDone(t, c, 10*time.Second)
		if err := c.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("long %d: Err = %v, want the parent's Canceled", i, err)
		}
	}
	late := w.WithTimeout(sc, time.Hour)
	defer late.Cancel()
	waitDone(t, late, 10*time.Second)
	if n := w.held(); n != 0 {
		t.Fatalf("the wheel holds %d contexts after the scope ended", n)
	}
	sc.Close()
	sc.Close()
	if n := len(w.scopes); n != 0 {
		t.Fatalf("%d scopes after Close", n)
	}

	// Close with a request still under it ends that request.
	sc2 := w.Scope(context.Background())
	c := w.WithTimeout(sc2, time.Hour)
	defer c.Cancel()
	sc2.Close()
	waitDone(t, c, 10*time.Second)
}

// TestNextIsEarliest: after a sweep the wheel's next is the earliest
// deadline it holds, so that a later deadline added after it wakes
// nothing.
func TestNextIsEarliest(t *testing.T) {
	w := newWheel(t)
	first := w.WithTimeout(context.Background(), time.Hour)
	defer first.Cancel()
	second := w.WithTimeout(context.Background(), 2*time.Hour)
	defer second.Cancel()
	// The first add kicked the goroutine: wait for its sweep to be over
	// (the kick taken, and next the earliest deadline a while after).
	deadline := time.Now().Add(10 * time.Second)
	for settled := 0; settled < 10; {
		if len(w.kick) == 0 && w.next.Load() == first.due {
			settled++
		} else {
			settled = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("next %d after a sweep, want the earliest deadline %d", w.next.Load(), first.due)
		}
		time.Sleep(time.Millisecond)
	}
	later := w.WithTimeout(context.Background(), 3*time.Hour)
	defer later.Cancel()
	select {
	case <-w.kick:
		t.Fatal("a deadline after next kicked the goroutine")
	default:
	}
}

// TestScopeKeepsFirstEnd: a Scope ended by its parent's deadline keeps
// that error when it is closed, for contexts made under it after.
func TestScopeKeepsFirstEnd(t *testing.T) {
	w := newWheel(t)
	parent, stop := context.WithTimeout(context.Background(), time.Millisecond)
	defer stop()
	sc := w.Scope(parent)
	c := w.WithTimeout(sc, time.Hour)
	defer c.Cancel()
	waitDone(t, c, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for { // the parent's AfterFunc ends the scope on a goroutine of its own
		sc.mu.Lock()
		ended := sc.err != nil
		sc.mu.Unlock()
		if ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the scope not ended 10s after its parent")
		}
		time.Sleep(time.Millisecond)
	}
	sc.Close()
	late := w.WithTimeout(sc, time.Hour)
	defer late.Cancel()
	if err := late.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("under a scope its parent's deadline ended, then closed: Err = %v, want DeadlineExceeded", err)
	}
}

// enderChan is an Ender that reports each call.
type enderChan chan string

func (e enderChan) Ended() { e <- "ended" }

// TestOnEnd: the Ender is told once when the context ends at its
// deadline; one set after the end is told at once; nil (or a
// replacement) keeps an earlier one from being told, so a Cancel after
// OnEnd(nil) tells nobody; and OnEnd allocates nothing.
func TestOnEnd(t *testing.T) {
	w := newWheel(t)
	e := make(enderChan, 4)
	c := w.WithTimeout(context.Background(), 20*time.Millisecond)
	c.OnEnd(e)
	waitErr(t, c, context.DeadlineExceeded)
	select {
	case <-e:
	case <-time.After(10 * time.Second):
		t.Fatal("the Ender was not told of the deadline")
	}
	c.Cancel()
	c.OnEnd(e) // ended: told at once
	select {
	case <-e:
	case <-time.After(10 * time.Second):
		t.Fatal("an Ender set after the end was not told")
	}
	quiet := make(enderChan, 4)
	c = w.WithTimeout(context.Background(), time.Hour)
	c.OnEnd(e)
	c.OnEnd(quiet) // replaces e
	c.OnEnd(nil)
	c.Cancel()
	time.Sleep(20 * time.Millisecond)
	if len(e)+len(quiet) != 0 {
		t.Fatalf("told after OnEnd(nil): %d, %d", len(e), len(quiet))
	}
	c = w.WithTimeout(context.Background(), time.Hour)
	if n := testing.AllocsPerRun(100, func() { c.OnEnd(e); c.OnEnd(nil) }); n != 0 {
		t.Fatalf("OnEnd allocates %v times", n)
	}
	c.Cancel()
}

// errEnder records the Err its context shows when it is told.
type errEnder struct {
	c   *Context
	got chan error
}

func (e errEnder) Ended() { e.got <- e.c.Err() }

// TestEnderSeesErr: an Ender, or an AfterFunc, set while its context
// ends sees the context ended (Err() != nil) when it runs. One told
// "ended" while Err() is nil cannot tell a timeout from a success: the
// disk wait of supervisor/continue.go replied success so. The end is
// held between marking the context ended and setting its err (where a
// descheduled goroutine would stop) while the Ender is set.
func TestEnderSeesErr(t *testing.T) {
	w := newWheel(t)
	for _, after := range []bool{false, true} {
		c := w.WithTimeout(context.Background(), time.Hour)
		entered, release := make(chan struct{}), make(chan struct{})
		hook := func() {
			close(entered)
			<-release
		}
		testHookEnding.Store(&hook)
		go c.Cancel()
		<-entered
		testHookEnding.Store(nil)
		got := make(chan error, 1)
		set := make(chan struct{})
		go func() {
			if after {
				c.AfterFunc(func() { got <- c.Err() })
			} else {
				c.OnEnd(errEnder{c, got})
			}
			close(set)
		}()
		time.Sleep(50 * time.Millisecond) // a told Ender would be told by now
		close(release)
		<-set
		select {
		case err := <-got:
			if err == nil {
				t.Fatalf("AfterFunc %v: told while Err() == nil", after)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("AfterFunc %v: never told", after)
		}
	}
}

// TestDoneMadeOnDemand: a context nobody asks Done of allocates no
// channel; Done asked before the end is closed by it, and Done asked
// after it is closed already, with Err set either way.
func TestDoneMadeOnDemand(t *testing.T) {
	w := newWheel(t)
	sc := w.Scope(context.Background())
	defer sc.Close()
	if n := testing.AllocsPerRun(100, func() { w.WithTimeout(sc, time.Hour).Cancel() }); n != 1 {
		t.Fatalf("a context never asked for Done: %v allocations, want 1 (the Context)", n)
	}
	before := w.WithTimeout(sc, time.Hour)
	d := before.Done()
	if d != before.Done() {
		t.Fatal("Done returned two channels")
	}
	select {
	case <-d:
		t.Fatal("Done closed before the end")
	default:
	}
	if before.Err() != nil {
		t.Fatalf("Err before the end: %v", before.Err())
	}
	before.Cancel()
	<-d
	if before.Err() != context.Canceled {
		t.Fatalf("Err after Cancel: %v", before.Err())
	}
	after := w.WithTimeout(sc, time.Nanosecond)
	for limit := time.Now().Add(10 * time.Second); after.Err() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(limit) {
			t.Fatal("not ended 10s after its deadline")
		}
	}
	<-after.Done() // made now, closed already
	if after.Err() != context.DeadlineExceeded {
		t.Fatalf("Err at the deadline: %v", after.Err())
	}
	after.Cancel()
}
