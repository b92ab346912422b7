package vip

import "time"

// A lease is the timer that ends a ticket when Config.Lease runs out. On a
// hot key tickets end and begin thousands of times a second, each held for
// microseconds; arming and stopping a timer for each was most of a
// ticket's cost. So a ticket that ends hands its still-armed timer to the
// next ticket granted in the same dispatch, and the timer is checked
// lazily: when it fires for a later ticket than the one it was armed for,
// it is armed again for what is left of that ticket's lease. A timer no
// grant takes over is stopped at the end of the dispatch.
type lease struct {
	stop     func() bool
	armedFor *Ticket // the ticket whose lease the timer was armed for
	t        *Ticket // the ticket it covers now; nil once it fired or stopped
}

// leaseLocked gives the newly granted t a lease: a timer an ended ticket
// left, or a new one.
func (a *Arbiter) leaseLocked(t *Ticket) {
	var l *lease
	if n := len(a.mu.spare); n > 0 {
		l = a.mu.spare[n-1]
		a.mu.spare[n-1] = nil
		a.mu.spare = a.mu.spare[:n-1]
		// The timer fires for an earlier deadline; then it needs t's.
		t.deadline = a.cfg.Clock.Now().UnixNano() + a.cfg.Lease.Nanoseconds()
	} else {
		l = &lease{}
		a.armLocked(l, t, a.cfg.Lease.Nanoseconds())
	}
	l.t = t
	t.lease = l
}

// armLocked arms l's timer for ticket t, to fire in ns nanoseconds.
func (a *Arbiter) armLocked(l *lease, t *Ticket, ns int64) {
	l.armedFor = t
	l.stop = a.cfg.Clock.AfterFunc(time.Duration(ns), func() { a.fire(l) })
}

// unleaseLocked detaches t's lease as t ends. An expired lease has fired;
// any other is still armed and becomes spare for the next grant.
func (a *Arbiter) unleaseLocked(t *Ticket, why EventKind) {
	l := t.lease
	if l == nil {
		return
	}
	t.lease, l.t = nil, nil
	if why == Expired {
		l.stop() // it has fired: this only says so to the clock
		return
	}
	a.mu.spare = append(a.mu.spare, l)
}

// fire is l's timer callback.
func (a *Arbiter) fire(l *lease) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := l.t
	switch {
	case t == nil:
		// Stopped, or its ticket ended, while the callback was starting.
	case t == l.armedFor:
		a.endLocked(t, Expired) // the clock says the lease ran out
	default:
		left := t.deadline - a.cfg.Clock.Now().UnixNano()
		if left <= 0 {
			a.endLocked(t, Expired)
			return
		}
		a.armLocked(l, t, left)
	}
}
