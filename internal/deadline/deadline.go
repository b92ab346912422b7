// Package deadline owns the deadlines of short requests. A Wheel makes
// contexts that end at a deadline, like context.WithTimeout's, and ends
// them from one goroutine that sleeps until the earliest deadline it
// holds, in place of a runtime timer and a timer context per request.
// A request that ends first (most do) leaves the Wheel at once, so the
// Wheel holds only the requests in flight, spread over shards with a lock
// each. It never runs the requests, never extends a deadline, and never
// fires one early.
package deadline

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// shards spreads the contexts in flight outside any Scope over this many
// lists, each with its own lock, so that requests starting and ending on
// many cores seldom meet on one.
const shards = 16

// Wheel ends the contexts it made at their deadlines. The zero value is
// not usable; call New. Close stops it.
type Wheel struct {
	shards [shards]paddedList
	// epoch is when the Wheel started: deadlines are kept as monotonic
	// nanoseconds since it, so that a step of the wall clock moves none.
	epoch time.Time
	// next is the earliest deadline the goroutine will wake for;
	// math.MaxInt64 when it holds none. A context due before it lowers it
	// and kicks the goroutine.
	next atomic.Int64
	kick chan struct{} // buffered 1
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	scopes map[*Scope]struct{}
	lists  []*list // sweep's, reused
}

// list is one set of contexts in flight: a shard's or a Scope's.
type list struct {
	mu   sync.Mutex
	live []*Context // a context's place is its idx
	err  error      // set when its Scope ended: a context added now ends at once
}

// paddedList is a list padded to 64 bytes, a cache line's size (list is
// 48), so that no two shards' locks are in one line.
type paddedList struct {
	list
	_ [64 - unsafe.Sizeof(list{})]byte
}

// New starts a Wheel and its goroutine.
func New() *Wheel {
	w := &Wheel{epoch: time.Now(), kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), scopes: map[*Scope]struct{}{}}
	w.next.Store(math.MaxInt64)
	go w.run() // owned by w: Close stops it and waits
	return w
}

// Close stops the Wheel's goroutine and waits for it. Contexts in flight
// are not ended: their parents and their cancel functions still end
// them, but their deadlines no longer do. Close is idempotent.
func (w *Wheel) Close() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// Scope is a context (its parent's, unchanged) under which the Wheel's
// contexts are cheaper: they are listed in the Scope, which ends them
// when the parent ends, instead of each registering with the parent. A
// client connection's context is one: its requests start and end with no
// lock but the Scope's and no allocation for the parent.
type Scope struct {
	context.Context
	list
	w    *Wheel
	stop func() bool
}

// Scope returns a Scope over parent. Call Close when no request under it
// runs any more.
func (w *Wheel) Scope(parent context.Context) *Scope {
	sc := &Scope{Context: parent, w: w}
	w.mu.Lock()
	w.scopes[sc] = struct{}{}
	w.mu.Unlock()
	sc.stop = context.AfterFunc(parent, func() { sc.end(parent.Err()) })
	return sc
}

// Close ends what still runs under sc (with context.Canceled) and lets
// the Wheel forget it. It is idempotent.
func (sc *Scope) Close() {
	sc.stop()
	sc.end(context.Canceled)
	sc.w.mu.Lock()
	delete(sc.w.scopes, sc)
	sc.w.mu.Unlock()
}

// end ends every context under sc, and those made under it later, with
// err (the first err counts).
func (sc *Scope) end(err error) {
	sc.mu.Lock()
	if sc.err != nil {
		sc.mu.Unlock()
		return
	}
	sc.err = err
	live := sc.live
	sc.live = nil
	for _, c := range live {
		c.idx = -1
	}
	sc.mu.Unlock()
	for _, c := range live {
		c.end(err)
	}
}

// WithTimeout returns a context that ends d from now, when parent ends, or
// when its Cancel is called, whichever is first; Cancel must be called
// once the work is done (it releases the context's place in the Wheel).
// Its Err is context.DeadlineExceeded at the deadline and
// context.Canceled after Cancel, as with context.WithTimeout; after its
// parent ends, the parent's Err. A parent that is a Scope costs the
// least. (Cancel is a method, not a returned function, to save the
// function value's allocation.)
func (w *Wheel) WithTimeout(parent context.Context, d time.Duration) *Context {
	return w.newContext(parent, time.Now().Add(d), d <= 0)
}

// WithDeadline is WithTimeout for a deadline at, for a caller that read
// the clock already: it reads it no more. A deadline already past ends
// the context at the goroutine's next sweep, which it wakes for at once.
func (w *Wheel) WithDeadline(parent context.Context, at time.Time) *Context {
	return w.newContext(parent, at, false)
}

// newContext makes a context with the deadline at, ended at once when
// expired.
func (w *Wheel) newContext(parent context.Context, at time.Time, expired bool) *Context {
	c := &Context{parent: parent, at: at, idx: -1}
	if pd, ok := parent.Deadline(); ok && pd.Before(c.at) {
		c.at = pd // the parent ends first: report its deadline, and end with it
	}
	c.due = int64(c.at.Sub(w.epoch))
	var l *list
	if sc, ok := parent.(*Scope); ok {
		l = &sc.list // sc ends c when the parent ends
	} else {
		l = &w.shards[rand.Uint32N(shards)].list // per-thread random state: no shared counter
		if err := parent.Err(); err != nil {
			c.end(err)
			return c
		}
		if parent.Done() != nil {
			c.stopParent = context.AfterFunc(parent, func() { c.end(parent.Err()) })
		}
	}
	if expired {
		c.end(context.DeadlineExceeded)
		return c
	}
	w.add(l, c)
	return c
}

// add puts c in l and makes sure the goroutine wakes by c's deadline.
func (w *Wheel) add(l *list, c *Context) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		c.end(l.err) // its Scope ended
		return
	}
	if c.isEnded() {
		l.mu.Unlock() // its parent ended meanwhile
		return
	}
	c.l, c.idx = l, len(l.live)
	l.live = append(l.live, c)
	l.mu.Unlock()
	at := c.due
	for {
		n := w.next.Load()
		if at >= n {
			return
		}
		if w.next.CompareAndSwap(n, at) {
			select {
			case w.kick <- struct{}{}:
			default: // a kick is pending: the goroutine sweeps anyway
			}
			return
		}
	}
}

// remove takes c out of its list, if it is in one.
func (l *list) remove(c *Context) {
	l.mu.Lock()
	if i := c.idx; i >= 0 {
		l.cut(i)
	}
	l.mu.Unlock()
}

// cut takes the context at i out of l (l.mu held): the last one takes
// its place.
func (l *list) cut(i int) {
	c := l.live[i]
	last := len(l.live) - 1
	moved := l.live[last]
	l.live[i], moved.idx = moved, i
	l.live[last] = nil
	l.live = l.live[:last]
	c.idx = -1 // after moved's: c may be the last one
}

// run sleeps until the earliest deadline, ends what is due, and sleeps
// again, until Close.
func (w *Wheel) run() {
	defer close(w.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := w.sweep(int64(time.Since(w.epoch)))
		if next != math.MaxInt64 {
			t.Reset(time.Duration(next - int64(time.Since(w.epoch))))
		} else {
			t.Stop()
		}
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-t.C:
		}
	}
}

// sweep ends every context due at now and returns the earliest deadline
// left. It publishes that as next before it looks at the lists: a
// context added meanwhile with an earlier deadline lowers next again and
// kicks, so none is missed.
func (w *Wheel) sweep(now int64) int64 {
	w.next.Store(math.MaxInt64)
	lists := w.lists[:0]
	for i := range w.shards {
		lists = append(lists, &w.shards[i].list)
	}
	w.mu.Lock()
	for sc := range w.scopes {
		lists = append(lists, &sc.list)
	}
	w.mu.Unlock()
	earliest := int64(math.MaxInt64)
	var due []*Context
	for _, l := range lists {
		l.mu.Lock()
		for j := 0; j < len(l.live); {
			c := l.live[j]
			if c.due > now {
				earliest = min(earliest, c.due)
				j++
				continue
			}
			l.cut(j) // out of the list, then ended
			due = append(due, c)
		}
		l.mu.Unlock()
	}
	clear(lists)
	w.lists = lists[:0]
	for _, c := range due {
		c.end(context.DeadlineExceeded)
	}
	for {
		n := w.next.Load()
		if earliest >= n || w.next.CompareAndSwap(n, earliest) {
			return min(earliest, n)
		}
	}
}

// Context is a request's context from a Wheel. It is safe for concurrent
// use, like every context.
type Context struct {
	parent context.Context
	at     time.Time
	due    int64 // at, in the Wheel's monotonic nanoseconds
	// done is made by the first Done (most requests end with no one
	// having asked for it: their watchers are OnEnd's), under mu, and
	// closed by end; one made after end is closedChan.
	done       atomic.Value // of chan struct{}: pointer-shaped, so storing it allocates nothing
	ended      atomic.Bool
	err        error // set once, before done is closed
	l          *list // its list; nil if it never was in one
	idx        int   // its place in l.live; -1 when out (under l.mu)
	stopParent func() bool

	mu     sync.Mutex
	afters map[*func()]struct{} // AfterFunc's functions; nil once ended
	ender  Ender                // OnEnd's
}

// testHookEnding, set by a test, runs in end between marking the
// context ended and setting its err.
var testHookEnding atomic.Pointer[func()]

// Ender is told that a context ended (Context.OnEnd).
type Ender interface{ Ended() }

var _ context.Context = (*Context)(nil)

// Deadline returns the deadline: the Wheel's, or the parent's if that is
// earlier.
func (c *Context) Deadline() (time.Time, bool) { return c.at, true }

// closedChan is the Done of a context first asked for it once ended.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// Done is closed when the context ends.
func (c *Context) Done() <-chan struct{} {
	if d := c.done.Load(); d != nil {
		return d.(chan struct{})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.done.Load(); d != nil {
		return d.(chan struct{})
	}
	ch := closedChan
	if !c.isEnded() {
		ch = make(chan struct{})
	}
	c.done.Store(ch)
	return ch
}

// Err is nil until Done is closed, then why the context ended.
func (c *Context) Err() error {
	if !c.isEnded() {
		return nil
	}
	// end sets err and closes done under mu, after it marks c ended.
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Value is the parent's value for key.
func (c *Context) Value(key any) any { return c.parent.Value(key) }

// AfterFunc arranges for f to run in its own goroutine once c ends, as
// context.AfterFunc does; stop undoes it if f has not started. A context
// derived from c (context.WithCancel) registers through it, so that
// deriving starts no goroutine.
func (c *Context) AfterFunc(f func()) (stop func() bool) {
	key := &f
	c.mu.Lock()
	if c.isEnded() && c.afters == nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.afters == nil {
		c.afters = map[*func()]struct{}{}
	}
	c.afters[key] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.afters[key]; !ok {
			return false
		}
		delete(c.afters, key)
		return true
	}
}

// OnEnd makes c call e.Ended, on a goroutine of its own, when it ends,
// or at once if it has ended, in place of the Ender set before; nil sets
// none. It is AfterFunc for one watcher that allocates nothing: set it
// to nil before a Cancel that ends the work it watches.
func (c *Context) OnEnd(e Ender) {
	c.mu.Lock()
	if c.isEnded() && c.afters == nil {
		c.mu.Unlock()
		if e != nil {
			go e.Ended()
		}
		return
	}
	c.ender = e
	c.mu.Unlock()
}

func (c *Context) isEnded() bool { return c.ended.Load() }

// end ends c with err; only the first call counts. It ends c under
// c.mu: OnEnd and AfterFunc, which look there, find c either not ended
// or ended with its err set and done closed, so what they start at once
// sees Err() != nil; and once any end returns, Err() != nil.
func (c *Context) end(err error) {
	// No look at ended before the lock: a second end that returned while
	// the first was still setting err would leave its caller (a Cancel)
	// with Err() == nil after it returned.
	c.mu.Lock()
	if !c.ended.CompareAndSwap(false, true) {
		c.mu.Unlock()
		return
	}
	if h := testHookEnding.Load(); h != nil {
		(*h)() // a goroutine descheduled here: ended, err not set
	}
	c.err = err
	if d := c.done.Load(); d != nil {
		close(d.(chan struct{}))
	}
	afters, e := c.afters, c.ender
	c.afters, c.ender = nil, nil
	c.mu.Unlock()
	for f := range afters {
		go (*f)()
	}
	if e != nil {
		go e.Ended()
	}
}

// Cancel ends c with context.Canceled (unless it ended already) and
// releases its place in the Wheel and its hold on the parent. It is
// idempotent.
func (c *Context) Cancel() {
	c.end(context.Canceled)
	if c.stopParent != nil {
		c.stopParent()
	}
	if c.l != nil {
		c.l.remove(c)
	}
}
