package ring

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The parking protocol, for a word W that one side (the waiter) parks on
// and the other (the waker) clears:
//
//	waiter                               waker
//	  W = parked                           publish (tail or head)
//	  re-check the ring: ready? return     if W == parked and
//	  futex_wait(W, parked)                   CAS(W, parked, running):
//	  W = running, loop                         futex_wake(W)
//
// Both stores and loads are sequentially consistent, so either the
// waiter's re-check sees what the waker published or the waker sees W ==
// parked; and since the waker changes W before it wakes, a futex_wait that
// starts after the wake returns at once (W is no longer parked). The
// waker makes one system call per park of the waiter, not per record.
// The words live in shared memory, so the futex is not FUTEX_PRIVATE.

const (
	futexWaitOp = 0 // FUTEX_WAIT
	futexWakeOp = 1 // FUTEX_WAKE
)

// futexNap bounds a futex sleep. A wake of this process's own (an
// interrupt) may come after the waiter's last look and before it sleeps,
// and a peer may set the shared word back to parked in between, so that
// the futex_wait does not see the wake; the nap bounds how long that
// delays the interrupt. Doorbells need none: their interrupt is a read
// deadline, which no peer can touch.
const futexNap = 100 * time.Millisecond

func futexWait(w *atomic.Uint32, val uint32) {
	// EAGAIN (the word changed), EINTR, ETIMEDOUT and a wake all mean:
	// look again.
	ts := unix.NsecToTimespec(int64(futexNap))
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
}

func futexWake(w *atomic.Uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, 1, 0, 0, 0)
}

// wake wakes the waiter of w, which sleeps on the futex, if it parks,
// and reports whether it did.
func wake(w *atomic.Uint32) bool { return wakeBell(w, -1) }

// wakeBell wakes the waiter of w if it parks, and reports whether it
// did: through the doorbell pipe when it is one (>= 0), else the futex.
func wakeBell(w *atomic.Uint32, bell int) bool {
	if w.Load() == parked && w.CompareAndSwap(parked, running) {
		if bell >= 0 {
			ringBell(bell)
		} else {
			futexWake(w)
		}
		return true
	}
	return false
}

// life is a mapping's lifetime, shared by its Reader and Writer: every
// wait holds mu for reading, so Close (which holds it for writing while
// it unmaps) never unmaps memory a waiter or an interrupt still touches.
type life struct {
	mu     sync.RWMutex
	closed atomic.Bool
}

// interrupt wakes waiter w in this process, unless the mapping is gone.
func (l *life) interrupt(w *waiter) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.closed.Load() {
		w.interrupt()
	}
}

// waiter is one side's way to block until its ring is ready.
type waiter struct {
	life *life
	word *atomic.Uint32 // the word this side parks on
	// bell, when set, is the read end of the doorbell pipe it sleeps on
	// instead of the futex (through the netpoller: no thread waits).
	bell *os.File
	// bellRC reads bell with readFn (readBell, made once: a closure per
	// sleep would allocate), which leaves its results in bn and berr.
	bellRC syscall.RawConn
	readFn func(fd uintptr) bool
	bn     int
	berr   error
	// intr holds an interrupt for a sleep that cannot read the bell: the
	// peer hung up its end (hungUp), so that only this process wakes it.
	intr   chan struct{}
	hungUp bool
	buf    [64]byte // what the bell held: wakes, read and dropped
	// owed counts the rings of parks that wakers took and no read of the
	// bell took yet (unpark): while there are some, a park reads the bell
	// before it sleeps (drainBell), not only once woken (parkOnBell).
	owed int64
	// bellFD is bell's descriptor, for drainBell's raw read.
	bellFD int
	// parkOnBell's read (parkBell, made once, as readFn): the wait's
	// context and readier, and whether the park was announced.
	parkFn    func(fd uintptr) bool
	pctx      context.Context
	pr        readier
	announced bool
	spin      time.Duration // poll this long before parking
	// nudged is set by Nudge: the wait in progress, or the next, returns
	// nil for its caller to look again. Local memory, which the peer
	// cannot touch.
	nudged atomic.Bool
	// beforePark runs just before the word is set to parked; tests use
	// it to publish in the window that the re-check closes. afterPark
	// runs just after, before the re-check. beforeSleep
	// runs after the re-check, just before the sleep.
	beforePark  func()
	afterPark   func()
	beforeSleep func()
	parks       uint64
	reads       uint64 // reads of the bell, for the tests
	// The registration that interrupts a wait when its context ends
	// (register): the context's Done channel, and its stop.
	regDone <-chan struct{}
	regStop func() bool
}

// readier is a Reader or a Writer: ready reports whether waiting is over.
type readier interface{ ready() bool }

// wait returns nil once r.ready() holds, ctx.Err() once ctx is done, or
// ErrClosed once the pair is closed in this process.
func (w *waiter) wait(ctx context.Context, r readier) error {
	w.life.mu.RLock()
	defer w.life.mu.RUnlock()
	for {
		if r.ready() {
			return nil
		}
		if w.nudged.Load() && w.nudged.Swap(false) {
			return nil
		}
		if w.life.closed.Load() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if w.spin > 0 && spinUntil(r, w.spin) {
			return nil
		}
		w.register(ctx)
		if w.beforePark != nil {
			w.beforePark()
		}
		if w.bell != nil && !w.hungUp && w.owed > 0 {
			w.drainBell()
		}
		// A ring still owed after the drain may land between it and the
		// read's start, which forgets its event: such a park reads first
		// (below, sleep), since on a kernel whose write to a non-empty
		// pipe wakes no epoll waiter (before Linux 5.14 and its stable
		// backports) a later ring would then wake nobody.
		if w.bell != nil && !w.hungUp && w.owed <= 0 {
			w.parkOnBell(ctx, r)
			if w.announced { // else an interrupt ended the read before the park began
				w.unpark()
			}
			continue
		}
		w.word.Store(parked)
		if w.afterPark != nil {
			w.afterPark()
		}
		if w.over(ctx, r) {
			w.unpark()
			continue
		}
		w.parks++
		if w.beforeSleep != nil {
			w.beforeSleep()
		}
		w.sleep()
		w.unpark()
	}
}

// over is a park's re-check, after it announced itself: whether the
// wait is over without a sleep (r ready, the pair closed, ctx done, a
// nudge).
func (w *waiter) over(ctx context.Context, r readier) bool {
	return r.ready() || w.life.closed.Load() || ctx.Err() != nil || w.nudged.Load()
}

// unpark ends a park: the word says running again. With a bell, a park
// that a waker took (it found the word parked and set it running) is
// rung once, whether or not it slept: owed counts such rings that no
// read took yet (bellRead), which the next park reads off first
// (drainBell), so that rings never pile up in the pipe. Only a hostile
// peer makes the count wrong, and only its own wakes late.
func (w *waiter) unpark() {
	if w.word.Swap(running) != parked && w.bell != nil {
		w.owed++
	}
	w.owed = max(w.owed, 0) // a read before its park was counted: a wake's
}

// register arranges for the end of ctx to interrupt w's waits. A
// registration outlives the wait that made it, for the next waits on the
// same context (a reader's loop waits on one for its life): one
// registration, not one per wait. A wait on another context replaces it;
// Pair.Close ends it (unregister). An interrupt that finds no wait makes
// the next sleep return at once, to a loop that sees ctx done.
func (w *waiter) register(ctx context.Context) {
	done := ctx.Done()
	if done == nil || done == w.regDone {
		return
	}
	w.unregister()
	w.regDone, w.regStop = done, context.AfterFunc(ctx, func() { w.life.interrupt(w) })
}

// unregister ends w's registration, if any. Called by w's waiter, or
// by Close with the lifetime held for writing.
func (w *waiter) unregister() {
	if w.regStop != nil {
		w.regStop()
	}
	w.regDone, w.regStop = nil, nil
}

// sleep blocks until the waiter is woken (or not: the caller looks again).
func (w *waiter) sleep() {
	if w.bell == nil {
		futexWait(w.word, parked)
		return
	}
	if w.hungUp {
		<-w.intr
		return
	}
	// Takes the rings of the bell since the last read (up to len(buf),
	// the rest wakes the next sleep at once).
	w.bellRead(w.bellRC.Read(w.readFn))
}

// drainBell reads off rings that no wake read (owed), without waiting:
// a raw read, which finds them or, if a waker has not rung yet, nothing
// (the next park reads again). The end (every write end closed) marks
// the bell hung up.
func (w *waiter) drainBell() {
	w.bn, w.berr = 0, nil
	if w.readBell(uintptr(w.bellFD)) {
		w.bellRead(nil)
	}
}

// parkOnBell announces that w parks and sleeps on its bell, both inside
// one read of the bell through the netpoller (parkBell). That read's
// wait begins by clearing what the netpoller knew of the pipe, so a ring
// after the announcement is an event after it, which ends the wait, and
// the waker rings only after the announcement: the read that would find
// nothing before the sleep (EAGAIN) is not made. Rings that no wake
// read (a waker took a park that its re-check or an interrupt ended)
// are counted (unpark) and read off by the next park before it
// announces itself (drainBell), so they never fill the pipe: a ring
// into a full pipe would wake nobody. A peer that hung up is seen when
// its hang-up ends the wait, or, if it came before, by a later read:
// until then only this process's interrupts end the wait, as after it.
func (w *waiter) parkOnBell(ctx context.Context, r readier) {
	w.pctx, w.pr, w.announced = ctx, r, false
	err := w.bellRC.Read(w.parkFn)
	w.pctx, w.pr = nil, nil
	w.bellRead(err)
}

// parkBell is parkOnBell's read, for bellRC.Read: its first call
// announces the park and re-checks (true, with nothing read: the wait
// is over), the next ones read the bell.
func (w *waiter) parkBell(fd uintptr) bool {
	if !w.announced {
		w.announced = true
		w.word.Store(parked)
		if w.afterPark != nil {
			w.afterPark()
		}
		if w.over(w.pctx, w.pr) {
			w.bn, w.berr = -1, nil // read nothing, and not the end
			return true
		}
		w.parks++
		if w.beforeSleep != nil {
			w.beforeSleep()
		}
		return false
	}
	return w.readBell(fd)
}

// bellRead handles what a read of the bell returned: err, bellRC.Read's,
// and readBell's results.
func (w *waiter) bellRead(err error) {
	if err == nil && w.berr == nil && w.bn > 0 {
		w.owed -= int64(w.bn) // unpark counts the park that this read ends next
	}
	if err == nil {
		err = w.berr
		if err == nil && w.bn == 0 {
			err = io.EOF
		}
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// An interrupt: the loop sees why (ctx done, closed) after the
		// reset, since the interrupt set the deadline after the reason.
		w.bell.SetReadDeadline(time.Time{})
	case errors.Is(err, io.EOF):
		// The peer closed its end (or died): nothing rings this bell
		// again, and reading it would return at once, for ever.
		w.hungUp = true
	}
}

// interrupt wakes w, for this process's own reasons to end a wait (a
// context done, Close). It goes through nothing the peer can touch: not
// the park word, which is shared memory (a peer killed between its
// compare-and-swap and its wake, or a hostile one, leaves it saying
// running while w sleeps), and not the bell, which the peer rings (a
// peer can fill it). A bell's read is ended by its deadline, which is
// this process's; a wake that finds w awake makes its next sleep return
// at once, to a loop that looks again.
//
// On the futex, the interrupt sets the word to running and wakes it; a
// hostile peer that sets the word back to parked between the wake and
// the futex_wait delays it by up to futexNap.
func (w *waiter) interrupt() {
	if w.bell == nil {
		w.word.Store(running)
		futexWake(w.word)
		return
	}
	w.bell.SetReadDeadline(aLongTimeAgo)
	select {
	case w.intr <- struct{}{}:
	default:
	}
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// pollUntil polls r.ready for up to d, looking 64 times between two
// checks of the clock, and reports whether the poll is over early: r
// ready, the pair closed or ctx done. It yields twice. At every check,
// the processor, so that a goroutine made runnable meanwhile runs (one
// waiting for a descriptor, at GOMAXPROCS 1, only once the poll is
// over: the Go scheduler takes a yielding goroutine back before it
// looks at the netpoller). And, once gap has passed since its last
// yield of the CPU (at every check when gap is 0), the CPU
// (sched_yield), so that a thread the kernel queued behind the poller
// runs: on 2 CPUs the supervisor's thread, woken by the worker's reply,
// often is, and without the yield waited out the poll (a client calling
// every 1ms: p50 190µs against 89µs without polling; 92µs with the
// yield; docs/BENCHMARKS.md, "Workers that poll"). See pollYieldGap for
// why not at every check.
func pollUntil(ctx context.Context, l *life, r readier, d, gap time.Duration) bool {
	start := time.Now()
	yielded := start
	for i := 0; ; i++ {
		if r.ready() {
			return true
		}
		if i%64 == 63 {
			if l.closed.Load() || ctx.Err() != nil {
				return true
			}
			now := time.Now()
			if now.Sub(start) >= d {
				return false
			}
			runtime.Gosched()
			if now.Sub(yielded) >= gap {
				yieldCPU()
				yielded = time.Now() // the gap is the poll's, not the system call's
			}
		}
	}
}

// yieldGap is how long a poll looks between two yields of the CPU where
// the process may run on more than one CPU.
const yieldGap = 4 * time.Microsecond

// pollYieldGap returns how long a poll looks between two yields of the
// CPU in a process whose affinity mask allows ncpu CPUs (taskset, a
// cpuset; a CPU quota does not change it). On one, 0: the poller yields
// at every check, since a supervisor that shares its CPU runs mostly
// when it yields (or when the kernel preempts it): a 4µs gap there cut
// noop 1x1 from 34k to 27-28k req/s. On more, yieldGap: a sched_yield
// costs about 1.2µs of a 2-vCPU VM's time, and one at every check (every
// 0.2µs of looking) made the in-process client round trip's p50 a
// median 2.7x a raw ping-pong's, against 1.8x with a yield after each
// 4µs of looking (ten alternated runs), which kept the latency of a
// client that calls every 1ms (docs/BENCHMARKS.md, "The poll's yield").
// A worker pinned to one CPU while its supervisor runs on another gets
// 0 too, and pays the system calls for nothing.
func pollYieldGap(ncpu int) time.Duration {
	if ncpu <= 1 {
		return 0
	}
	return yieldGap
}

// pollGap is pollYieldGap for the CPUs this process may run on (its
// affinity mask when it started). A variable for the tests.
var pollGap = pollYieldGap(runtime.NumCPU())

// yieldCPU gives the CPU to a thread the kernel queued behind this one,
// if any (sched_yield; a raw call: it does not block). A variable for
// the tests.
var yieldCPU = func() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// spinUntil polls r.ready for up to d and reports whether it held.
func spinUntil(r readier, d time.Duration) bool {
	start := time.Now()
	for i := 0; ; i++ {
		if r.ready() {
			return true
		}
		if i%64 == 63 && time.Since(start) >= d {
			return false
		}
	}
}
