package ring

import (
	"context"
	"errors"
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// awaitRing waits for what a call on h's reader sends on done, failing
// the test if it takes a minute (the ring is closed then, which ends the
// call).
func awaitRing[T any](t *testing.T, h *heapRing, done <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-time.After(time.Minute):
		h.close()
		<-done
		t.Fatalf("%s did not return", what)
		panic("unreachable")
	}
}

// waitDone is awaitRing for a Wait's error.
func waitDone(t *testing.T, h *heapRing, done <-chan error) error {
	t.Helper()
	return awaitRing(t, h, done, "Wait")
}

// pollDone is awaitRing for a PollAdvised's result.
func pollDone(t *testing.T, h *heapRing, done <-chan bool) bool {
	t.Helper()
	return awaitRing(t, h, done, "PollAdvised")
}

// PollAdvised polls while advised: a record published meanwhile is
// found with no park and no wake.
func TestPollAdvisedFindsTheRecord(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	h.w.SetPoll(30 * time.Second)
	done := make(chan bool, 1)
	go func() { done <- h.r.PollAdvised(context.Background(), time.Minute) }()
	time.Sleep(5 * time.Millisecond) // the reader polls meanwhile (or has not started: the same for the check)
	if err := h.w.Write([]byte("soon")); err != nil {
		t.Fatal(err)
	}
	if !pollDone(t, h, done) {
		t.Fatal("PollAdvised = false with a record published during the poll")
	}
	if h.w.Wakes() != 0 || h.r.Parks() != 0 {
		t.Fatalf("%d wakes, %d parks: want none", h.w.Wakes(), h.r.Parks())
	}
}

// Nothing advised, PollAdvised returns at once; the reader's own bound
// caps what is advised; Wait never polls on advice.
func TestPollAdvisedBounds(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	ctx := context.Background()
	if h.r.PollAdvised(ctx, time.Hour) {
		t.Fatal("PollAdvised = true on an empty ring with no advice")
	}
	h.w.SetPoll(time.Hour)
	start := time.Now()
	if h.r.PollAdvised(ctx, 2*time.Millisecond) {
		t.Fatal("PollAdvised = true on an empty ring")
	}
	if d := time.Since(start); d < 2*time.Millisecond || d > 30*time.Second {
		t.Fatalf("advised an hour, bounded to 2ms: polled %s", d)
	}
	if h.r.PollAdvised(ctx, 0) {
		t.Fatal("PollAdvised = true bounded to 0")
	}
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(ctx) }()
	waitParked(t, h, "Wait advised an hour", h.r.w.word)
	if err := h.w.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, h, done); err != nil {
		t.Fatal(err)
	}
}

// A poll ends when its context does, or the pair closes, not when the
// advice runs out; on a closed pair it does not start.
func TestPollAdvisedEndsWithContextAndClose(t *testing.T) {
	t.Run("context", func(t *testing.T) {
		h := newHeapRing(t, MinCapacity)
		defer h.close()
		h.w.SetPoll(time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan bool, 1)
		go func() { done <- h.r.PollAdvised(ctx, time.Hour) }()
		time.Sleep(5 * time.Millisecond)
		cancel()
		if pollDone(t, h, done) {
			t.Fatal("PollAdvised = true on an empty ring")
		}
	})
	t.Run("close", func(t *testing.T) {
		h := newHeapRing(t, MinCapacity)
		h.w.SetPoll(time.Hour)
		done := make(chan bool, 1)
		go func() { done <- h.r.PollAdvised(context.Background(), time.Hour) }()
		time.Sleep(5 * time.Millisecond)
		go h.close() // waits for the poll to leave
		if pollDone(t, h, done) {
			t.Fatal("PollAdvised = true on an empty ring")
		}
		if h.r.PollAdvised(context.Background(), time.Hour) {
			t.Fatal("PollAdvised = true on a closed pair")
		}
	})
}

// At GOMAXPROCS 1 a poll yields: a goroutine that is runnable meanwhile
// runs hundreds of times or more during a 50ms poll (without the yields,
// only the scheduler's preemption, every 10ms, would let it run: a few
// times; 2 when measured).
func TestPollAdvisedYields(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// The processor's yield alone: a sched_yield can hand the CPU to
	// another process for a while on a loaded machine (a CI run), and
	// count fewer looks (TestPollYieldsTheCPU checks it is made).
	defer func(f func()) { yieldCPU = f }(yieldCPU)
	yieldCPU = func() {}
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	h.w.SetPoll(time.Second)
	var runs atomic.Int64
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			runs.Add(1)
			runtime.Gosched()
		}
	}()
	h.r.PollAdvised(context.Background(), 50*time.Millisecond)
	close(stop)
	<-stopped
	if n := runs.Load(); n < 20 {
		t.Fatalf("a runnable goroutine ran %d times during a 50ms poll at GOMAXPROCS 1: the poll does not yield", n)
	}
}

// looks is a readier that is never ready and counts how often it was
// asked.
type looks struct{ n int }

func (r *looks) ready() bool { r.n++; return false }

// A poll yields the CPU at every check of the clock (every 64 looks)
// with no gap, and with a gap at most once per gap of looking, but at
// least once in a poll many gaps long.
func TestPollYieldsTheCPU(t *testing.T) {
	var yields int
	defer func(f func()) { yieldCPU = f }(yieldCPU)
	yieldCPU = func() { yields++ }
	l := &life{}
	t.Run("every check", func(t *testing.T) {
		yields = 0
		r := &looks{}
		if pollUntil(context.Background(), l, r, 5*time.Millisecond, 0) {
			t.Fatal("pollUntil = true for a readier never ready")
		}
		// The last check ends the poll before it yields.
		if want := r.n/64 - 1; yields != want {
			t.Fatalf("%d yields of the CPU in %d looks with no gap, want one per 64 looks but the last: %d", yields, r.n, want)
		}
	})
	t.Run("gap", func(t *testing.T) {
		yields = 0
		r := &looks{}
		const d, gap = 200 * time.Millisecond, time.Millisecond
		pollUntil(context.Background(), l, r, d, gap)
		if max := int(d / gap); yields > max || yields < 1 {
			t.Fatalf("%d yields of the CPU in a %v poll with a %v gap, want 1 to %d", yields, d, gap, max)
		}
	})
}

// PollAdvised polls with pollGap, and counts the gap from the end of a
// yield: with yields that take 2ms and a 1ms gap, a 60ms poll yields
// at most every 3ms.
func TestPollAdvisedSpacesItsYields(t *testing.T) {
	var yields int
	defer func(f func(), g time.Duration) { yieldCPU, pollGap = f, g }(yieldCPU, pollGap)
	yieldCPU = func() { yields++; time.Sleep(2 * time.Millisecond) }
	pollGap = time.Millisecond
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	h.w.SetPoll(time.Second)
	const d = 60 * time.Millisecond
	if h.r.PollAdvised(context.Background(), d) {
		t.Fatal("PollAdvised = true on an empty ring")
	}
	if max := int(d/(3*time.Millisecond)) + 1; yields > max || yields < 1 {
		t.Fatalf("%d yields of the CPU in a %v poll, each taking 2ms, with a 1ms gap: want 1 to %d", yields, d, max)
	}
}

// One CPU: the poller yields it at every check (what it waits for runs
// only then); more: once per yieldGap.
func TestPollYieldGap(t *testing.T) {
	for _, c := range []struct {
		ncpu int
		want time.Duration
	}{{1, 0}, {0, 0}, {2, yieldGap}, {16, yieldGap}} {
		if got := pollYieldGap(c.ncpu); got != c.want {
			t.Errorf("pollYieldGap(%d) = %v, want %v", c.ncpu, got, c.want)
		}
	}
	if yieldGap <= 0 {
		t.Fatalf("yieldGap = %v: a process with more than one CPU would yield at every check", yieldGap)
	}
}

// The advice a Shared writes with a record is there before the record
// is: a reader that sees the record sees the advice.
func TestSharedAdviceBeforeTheRecord(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	s := NewShared(h.w)
	got := make(chan time.Duration, 1)
	go func() {
		var b Batch
		for {
			n, err := h.r.ReadBatch(&b, 0)
			if err != nil {
				t.Error(err)
				got <- -1
				return
			}
			if n > 0 {
				got <- pollDuration(h.r.m.poll.Load())
				return
			}
			runtime.Gosched()
		}
	}()
	s.SetPoll(90 * time.Microsecond)
	if _, err := s.Append([]byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if d := <-got; d != 90*time.Microsecond {
		t.Fatalf("the reader saw the record with advice %v, want 90µs", d)
	}
}

// The advice is whole microseconds, clamped to the word; nothing once the
// ring is closed.
func TestSetPollWord(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	for _, c := range []struct{ set, want time.Duration }{
		{-time.Second, 0},
		{1500 * time.Nanosecond, time.Microsecond},
		{999 * time.Nanosecond, 0},
		{50 * time.Microsecond, 50 * time.Microsecond},
		{math.MaxInt64, math.MaxUint32 * time.Microsecond},
	} {
		h.w.SetPoll(c.set)
		if got := h.w.Poll(); got != c.want {
			t.Errorf("SetPoll(%v): Poll() = %v, want %v", c.set, got, c.want)
		}
	}
	h.w.SetPoll(time.Millisecond)
	h.close()
	h.w.SetPoll(time.Second) // does nothing, and does not fault
	if got := h.w.Poll(); got != 0 {
		t.Errorf("Poll() after close = %v, want 0", got)
	}
}

// Shared.SetPoll reaches the ring with the next record, before the
// consumer can see it, and never after Close.
func TestSharedSetPoll(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	s := NewShared(h.w)
	s.SetPoll(70 * time.Microsecond)
	if got := h.w.Poll(); got != 0 {
		t.Fatalf("Poll() before a record = %v, want 0", got)
	}
	if _, err := s.AppendNoWake([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := h.w.Poll(); got != 70*time.Microsecond {
		t.Fatalf("Poll() with the record = %v, want 70µs", got)
	}
	s.SetPoll(0)
	if _, err := s.Append([]byte("b"), false); err != nil {
		t.Fatal(err)
	}
	if got := h.w.Poll(); got != 0 {
		t.Fatalf("Poll() after SetPoll(0) and a record = %v, want 0", got)
	}
	s.Close()
	s.SetPoll(time.Second)
	if _, err := s.Append([]byte("c"), false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if got := h.w.Poll(); got != 0 {
		t.Fatalf("Poll() after Close = %v, want 0 (unchanged)", got)
	}
}

// Nudge ends the Wait in progress with no record, or else the next one;
// a Wait after that waits for a record.
func TestNudge(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	ctx := context.Background()
	h.r.Nudge() // no Wait in progress: the next one returns at once
	if err := h.r.Wait(ctx); err != nil || h.r.ready() || h.r.Parks() != 0 {
		t.Fatalf("Wait after a nudge = %v, ready %v, %d parks: want nil at once, no record", err, h.r.ready(), h.r.Parks())
	}
	done := make(chan error, 1)
	go func() { done <- h.r.Wait(ctx) }()
	waitParked(t, h, "the reader", h.r.w.word)
	h.r.Nudge()
	if err := waitDone(t, h, done); err != nil {
		t.Fatal(err)
	}
	if h.r.ready() {
		t.Fatal("a record appeared")
	}
	go func() { done <- h.r.Wait(ctx) }()
	waitParked(t, h, "the reader after a nudge", h.r.w.word)
	if err := h.w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := waitDone(t, h, done); err != nil {
		t.Fatal(err)
	}
	if !h.r.ready() {
		t.Fatal("Wait returned without the record")
	}
}

// A nudge that lands after the Wait looked for one and before it parks
// (beforePark) ends the Wait without a sleep: on the futex, the nudge's
// wake would be lost when the word is set to parked, and the sleep last
// futexNap.
func TestNudgeBeforeThePark(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	defer h.close()
	once := true
	h.r.w.beforePark = func() {
		if once {
			once = false
			h.r.Nudge()
		}
	}
	if err := h.r.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.r.Parks() != 0 {
		t.Fatalf("%d parks: the nudge before the park was not seen", h.r.Parks())
	}
}
