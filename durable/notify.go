package durable

import (
	"errors"
	"fmt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/internal/golabel"
)

// ErrClosed is what a Waiter hears when the journal closed before its
// version was written (a commit made after Close).
var ErrClosed = errors.New("durable: the journal is closed")

// Waiter is told when a version is on disk (Notify).
type Waiter interface {
	// OnDisk is called once: with nil when the version is on disk, or
	// with an error wrapping ErrFailed or ErrClosed when it never will
	// be. It runs on the journal's notifier goroutine, after the batch
	// that wrote the version: it must be quick and must not wait for the
	// journal.
	OnDisk(err error)
}

// Later is a Waiter's work for the end of its batch: a Waiter that is a
// Later too has its Later called, on the notifier goroutine, once
// OnDisk has been called on every waiter the same batch made ready
// (work that costs less done once for all of them, such as one write
// per connection for their replies).
type Later interface{ Later() }

// waiting is a Waiter, the version it waits for and, once ready, what
// it is told.
type waiting struct {
	v   cas.Version
	w   Waiter
	err error
}

// Notify tells w when version v (a version the store committed) is on
// disk, with no goroutine waiting for it: the journal's notifier calls
// w.OnDisk once the batch that holds v is written. It reports done,
// telling w nothing, when v is on disk already (err nil) or never will be
// (err wraps ErrFailed or ErrClosed). In Async mode nothing is waited
// for, as with Wait.
func (j *Journal) Notify(v cas.Version, w Waiter) (done bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.err != nil:
		return true, j.err
	case j.durable >= v || j.cfg.Mode == Async:
		return true, nil
	case j.closed:
		return true, fmt.Errorf("%w: version %d was not written", ErrClosed, v)
	}
	j.waiters = append(j.waiters, waiting{v: v, w: w})
	return false, nil
}

// wake moves the waiters whose version is durable to ready, and every
// one, told err, when err is not nil (a failure, or Close); it kicks the
// notifier (j.mu held).
func (j *Journal) wake(err error) {
	kept := j.waiters[:0]
	for _, wt := range j.waiters {
		if wt.v <= j.durable {
			j.ready = append(j.ready, wt)
		} else if err != nil {
			wt.err = err
			j.ready = append(j.ready, wt)
		} else {
			kept = append(kept, wt)
		}
	}
	clear(j.waiters[len(kept):])
	j.waiters = kept
	if len(j.ready) > 0 {
		select {
		case j.notify <- struct{}{}:
		default:
		}
	}
}

// notifier calls the ready waiters, outside the committer: the next
// batch's fsync does not wait for them. It returns once Close has handed
// it the last ones.
func (j *Journal) notifier() {
	defer close(j.notified)
	golabel.Set(golabel.JournalNotify, -1)
	for {
		select {
		case <-j.notify:
		case <-j.notifyStop:
			j.callReady()
			return
		}
		j.callReady()
	}
}

// callReady calls the waiters that wake made ready.
func (j *Journal) callReady() {
	j.mu.Lock()
	ready := j.ready
	j.ready = nil
	j.mu.Unlock()
	for _, wt := range ready {
		wt.w.OnDisk(wt.err)
	}
	for _, wt := range ready {
		if l, ok := wt.w.(Later); ok {
			l.Later()
		}
	}
}
