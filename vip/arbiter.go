package vip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the arbiter.
var (
	ErrClosed = errors.New("vip: arbiter closed")
)

// DefaultLease is how long a ticket lasts when Config.Lease is zero.
const DefaultLease = 2 * time.Second

// Clock is the time the arbiter uses for leases and for how long keys
// stay hot. The default is the time package (which testing/synctest
// fakes).
type Clock interface {
	AfterFunc(d time.Duration, f func()) (stop func() bool)
	Now() time.Time
}

type realClock struct{}

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

func (realClock) Now() time.Time { return time.Now() }

// EventKind says what happened to a ticket.
type EventKind uint8

// Event kinds, in the order a ticket lives them.
const (
	Granted EventKind = iota + 1
	Released
	Expired
	Revoked
)

func (k EventKind) String() string {
	switch k {
	case Granted:
		return "granted"
	case Released:
		return "released"
	case Expired:
		return "expired"
	case Revoked:
		return "revoked"
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is reported to Config.Trace, under the arbiter's lock, in the order
// the events happen.
type Event struct {
	Kind   EventKind
	Ticket uint64
	Owner  string
	Keys   []string // shared with the ticket: read only
}

// Config tunes an Arbiter.
type Config struct {
	// Strict makes every ticket cover every key (for the store's strict
	// mode, where any commit invalidates every snapshot).
	Strict bool
	// Lease bounds how long a ticket is held; default DefaultLease.
	Lease time.Duration
	Clock Clock
	// Trace, when set, sees every grant and end of a ticket. It must not
	// call back into the arbiter.
	Trace func(Event)
	// HotFor is how long keys stay contended after a conflict on them
	// (Heat): meanwhile Contended reports them even with no ticket held,
	// so new invocations queue for a ticket instead of colliding again.
	// Default DefaultHotFor; negative turns it off.
	HotFor time.Duration
}

// DefaultHotFor is Config.HotFor's default.
const DefaultHotFor = 20 * time.Millisecond

// maxHot bounds the keys remembered as hot.
const maxHot = 1024

// Arbiter grants VIP tickets. It is safe for concurrent use.
type Arbiter struct {
	cfg    Config
	active atomic.Int32 // len(mu.held), read without the lock on the commit path
	nextID atomic.Uint64
	// hotUntil is when the last heated key cools (Unix ns), read without
	// the lock.
	hotUntil atomic.Int64

	mu struct {
		sync.Mutex
		held   []*Ticket
		keys   heldKeys        // held's keys, indexed
		queue  []*Ticket       // requests, granted in order (dispatchLocked)
		spare  []*lease        // leases of tickets that just ended, still armed
		ready  []chan struct{} // drained request channels, for reuse
		hot    HotKeys         // keys heated within HotFor
		closed bool
	}
}

// Ticket is a granted lease over a key set. Before its grant it is the
// request Acquire queues.
type Ticket struct {
	id    uint64
	owner string
	keys  []string
	a     *Arbiter
	ended atomic.Bool // set under a.mu; read without it by Valid

	// Guarded by a.mu.
	ready    chan struct{} // the grant (or Close) is sent here; reused (readyLocked)
	drained  atomic.Bool   // Acquire has received the grant from ready
	err      error         // why the request failed (Close); set before the send
	done     chan struct{} // made on first use (Done, Blocker); closed at the end
	lease    *lease
	deadline int64 // when a handed-over lease runs out (Unix ns on Config.Clock)
}

// New returns an Arbiter.
func New(cfg Config) *Arbiter {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.HotFor == 0 {
		cfg.HotFor = DefaultHotFor
	}
	return &Arbiter{cfg: cfg}
}

// Strict reports whether every ticket covers every key.
func (a *Arbiter) Strict() bool { return a.cfg.Strict }

func (a *Arbiter) overlap(x, y []string) bool {
	return a.cfg.Strict || overlaps(x, y)
}

// Acquire waits for a ticket over keys, in FIFO order among requests whose
// key sets overlap. It returns ctx's error if ctx ends first, and ErrClosed
// after Close.
func (a *Arbiter) Acquire(ctx context.Context, owner string, keys []string) (*Ticket, error) {
	t := &Ticket{owner: owner, keys: slices.Clone(keys), a: a}
	a.mu.Lock()
	if a.mu.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	t.ready = a.readyLocked()
	ready := t.ready
	a.mu.queue = append(a.mu.queue, t)
	a.dispatchLocked()
	a.mu.Unlock()

	select {
	case <-ready:
		return answered(t)
	case <-ctx.Done():
	}
	a.mu.Lock()
	if i := slices.Index(a.mu.queue, t); i >= 0 {
		a.mu.queue = slices.Delete(a.mu.queue, i, i+1)
		a.recycleLocked(ready) // never sent on: it left the queue unanswered
		t.ready = nil
		a.dispatchLocked() // those queued behind us may go now
		a.mu.Unlock()
		return nil, ctx.Err()
	}
	a.mu.Unlock()
	// Granted (or closed) while we gave up: the send was made under the
	// lock, so it is there; hand the ticket back.
	<-ready
	if t, err := answered(t); err == nil {
		t.Release()
	}
	return nil, ctx.Err()
}

// answered returns what the request t was answered, once its channel has
// been drained.
func answered(t *Ticket) (*Ticket, error) {
	if t.err != nil { // written before the send we received
		return nil, t.err
	}
	t.drained.Store(true)
	return t, nil
}

// maxReady bounds the request channels an arbiter keeps for reuse.
const maxReady = 64

// readyLocked returns a channel for a request to wait on: one an earlier
// request drained, or a new one.
func (a *Arbiter) readyLocked() chan struct{} {
	if n := len(a.mu.ready); n > 0 {
		c := a.mu.ready[n-1]
		a.mu.ready[n-1] = nil
		a.mu.ready = a.mu.ready[:n-1]
		return c
	}
	return make(chan struct{}, 1)
}

// recycleLocked keeps an empty request channel for a later request.
func (a *Arbiter) recycleLocked(c chan struct{}) {
	if len(a.mu.ready) < maxReady {
		a.mu.ready = append(a.mu.ready, c)
	}
}

// dispatchLocked grants every queued request that overlaps no held ticket
// and no request queued before it; then it stops the leases that ended
// tickets left and no grant took over.
func (a *Arbiter) dispatchLocked() {
	q := a.mu.queue
	kept := q[:0]
	for _, r := range q {
		blocked := a.heldOverLocked(r.keys)
		for _, earlier := range kept {
			if blocked {
				break
			}
			blocked = a.overlap(r.keys, earlier.keys)
		}
		if blocked {
			kept = append(kept, r)
			continue
		}
		a.grantLocked(r)
	}
	clear(q[len(kept):])
	a.mu.queue = kept
	for i, l := range a.mu.spare {
		l.stop()
		a.mu.spare[i] = nil
	}
	a.mu.spare = a.mu.spare[:0]
}

func (a *Arbiter) grantLocked(t *Ticket) {
	t.id = a.nextID.Add(1)
	a.mu.held = append(a.mu.held, t)
	a.mu.keys.add(t)
	a.active.Store(int32(len(a.mu.held)))
	a.leaseLocked(t)
	a.trace(Granted, t)
	t.ready <- struct{}{}
}

func (a *Arbiter) trace(k EventKind, t *Ticket) {
	if a.cfg.Trace != nil {
		a.cfg.Trace(Event{Kind: k, Ticket: t.id, Owner: t.owner, Keys: t.keys})
	}
}

// endLocked finishes t once; later calls do nothing. It reports whether t
// was still held.
func (a *Arbiter) endLocked(t *Ticket, why EventKind) bool {
	if t.ended.Load() {
		return false
	}
	a.unleaseLocked(t, why)
	if t.drained.Load() { // else the grant may still sit in it
		a.recycleLocked(t.ready)
	}
	t.ready = nil
	if i := slices.Index(a.mu.held, t); i >= 0 {
		a.mu.held = slices.Delete(a.mu.held, i, i+1)
		a.mu.keys.remove(t)
	}
	a.active.Store(int32(len(a.mu.held)))
	a.trace(why, t)
	// Whoever sees the end (Valid, Done, a Release that does nothing) sees
	// the trace of it too.
	t.ended.Store(true)
	if t.done != nil {
		close(t.done)
	}
	a.dispatchLocked()
	return true
}

// Release ends the ticket. It is safe to call more than once and on a nil
// ticket.
func (t *Ticket) Release() {
	if t == nil || t.ended.Load() {
		return
	}
	t.a.mu.Lock()
	t.a.endLocked(t, Released)
	t.a.mu.Unlock()
}

// Valid reports whether the ticket is still held (not released, revoked or
// expired).
func (t *Ticket) Valid() bool {
	return t != nil && !t.ended.Load()
}

// Done is closed when the ticket ends.
func (t *Ticket) Done() <-chan struct{} {
	t.a.mu.Lock()
	defer t.a.mu.Unlock()
	return t.doneLocked()
}

// doneLocked makes t's done channel on first use: most tickets end
// without anyone waiting on them.
func (t *Ticket) doneLocked() chan struct{} {
	if t.done == nil {
		t.done = make(chan struct{})
		if t.ended.Load() {
			close(t.done)
		}
	}
	return t.done
}

// ID identifies the ticket in traces and logs.
func (t *Ticket) ID() uint64 { return t.id }

// Owner is the owner the ticket was acquired for.
func (t *Ticket) Owner() string { return t.owner }

// Keys is the ticket's key set. The caller must not modify it.
func (t *Ticket) Keys() []string { return t.keys }

// Active reports whether any ticket is held. It takes no lock, so the commit
// path pays nothing when nobody holds a ticket.
func (a *Arbiter) Active() bool { return a.active.Load() > 0 }

// Blocker returns the done channel of a held ticket, other than own, whose
// keys overlap keys; nil when no ticket blocks them. The store calls it
// inside its commit critical section, so a ticket granted afterwards sees
// that commit in its holder's next snapshot.
func (a *Arbiter) Blocker(keys []string, own *Ticket) <-chan struct{} {
	if !a.Active() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg.Strict {
		for _, t := range a.mu.held {
			if t != own {
				return t.doneLocked()
			}
		}
		return nil
	}
	for _, k := range keys {
		dk := dots(k)
		if t := a.mu.keys.holder(k, dk); t != nil {
			if t == own {
				// No other held ticket overlaps own's key, so none
				// overlaps k, which it covers.
				continue
			}
			return t.doneLocked()
		}
		if !a.mu.keys.under(k, dk) {
			continue
		}
		// A held key lies under k: find its ticket (a commit over a
		// subtree while a key inside it is held: rare).
		for _, t := range a.mu.held {
			if t == own {
				continue
			}
			for _, q := range t.keys {
				if covers(k, q) {
					return t.doneLocked()
				}
			}
		}
	}
	return nil
}

// heldOverLocked reports whether a held ticket overlaps keys.
func (a *Arbiter) heldOverLocked(keys []string) bool {
	if a.cfg.Strict {
		return len(a.mu.held) > 0
	}
	for _, k := range keys {
		if dk := dots(k); a.mu.keys.holder(k, dk) != nil || a.mu.keys.under(k, dk) {
			return true
		}
	}
	return false
}

// Contended reports whether a ticket is held on keys that overlap keys
// (requests queue only behind a held ticket, so this covers them too), or
// whether they overlap keys heated within HotFor.
func (a *Arbiter) Contended(keys []string) bool {
	// The clock is read only when heat decides: on a hot key a ticket is
	// nearly always held, and reading the clock costs more than the rest.
	// With no ticket held and nothing heated (hotUntil 0) it is not read
	// at all; heat found cooled is forgotten (hotUntil back to 0, unless
	// a Heat raised it meanwhile).
	var now int64
	timed := false
	if !a.Active() {
		until := a.hotUntil.Load()
		if until == 0 {
			return false
		}
		now, timed = a.cfg.Clock.Now().UnixNano(), true
		if now >= until {
			a.hotUntil.CompareAndSwap(until, 0)
			return false
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.heldOverLocked(keys) {
		return true
	}
	if a.mu.hot.Len() == 0 {
		return false
	}
	if !timed {
		now = a.cfg.Clock.Now().UnixNano()
	}
	return a.mu.hot.Contended(keys, now, a.cfg.Strict)
}

// Heat records a conflict on keys: for HotFor they count as contended.
// Group commit releases many callers at once; without this, their next
// invocations on a hot key all run optimistically, and all but one lose.
func (a *Arbiter) Heat(keys []string) {
	if a.cfg.HotFor < 0 || len(keys) == 0 {
		return
	}
	now := a.cfg.Clock.Now().UnixNano()
	cools := now + a.cfg.HotFor.Nanoseconds()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.hot.Add(keys, now, cools)
	if cools > a.hotUntil.Load() {
		a.hotUntil.Store(cools)
	}
}

// Close ends every ticket and refuses every queued and future request.
// It is safe to call more than once.
func (a *Arbiter) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mu.closed = true
	for _, r := range a.mu.queue {
		r.err = ErrClosed
		r.ready <- struct{}{}
	}
	a.mu.queue = nil
	for _, t := range slices.Clone(a.mu.held) {
		a.endLocked(t, Revoked)
	}
}
