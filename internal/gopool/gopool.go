// Package gopool keeps the goroutines of short tasks for the next task.
//
// A server that hands each request to a new goroutine pays, per request,
// for the goroutine's start and for growing its stack (copying it, 8 KiB
// to 16 KiB to 32 KiB) through a deep call path. A Pool keeps up to a
// bound of goroutines idle after their task and hands the next task to
// one of them, whose stack has grown already. It owns those goroutines;
// it never queues a task: Go runs it at once, on an idle goroutine or a
// new one.
package gopool

import (
	"sync"
	"sync/atomic"

	"github.com/theus-run/theus/internal/golabel"
)

// Pool runs tasks on goroutines it keeps, up to MaxIdle waiting at once.
// The zero value is not usable; call New. Close stops it.
type Pool struct {
	maxIdle int
	started atomic.Int64   // goroutines started by Go, kept or not
	wg      sync.WaitGroup // the goroutines started before Close

	mu sync.Mutex
	// idle are the goroutines waiting for a task, the most recent last:
	// Go hands a task to the one that ran last, whose stack and cache are
	// the warmest. Each waits on its own channel, so a hand-off takes no
	// lock that the other idle goroutines wait on.
	idle   []chan task
	closed bool
}

// task is a function to run and the labels its goroutine carries while
// it runs (golabel): a kept goroutine works for one owner after another,
// so the labels go with the task, not with the goroutine.
type task struct {
	f      func()
	labels golabel.Labels
}

// New returns a Pool that keeps at most maxIdle goroutines idle (at least
// one).
func New(maxIdle int) *Pool {
	return &Pool{maxIdle: max(maxIdle, 1)}
}

// Go runs f on an idle goroutine of p, or on a new one when none is idle,
// without profile labels. It never waits for a goroutine. After Close, f
// runs on a new goroutine that p does not keep or wait for (its caller
// owns f, as always).
func (p *Pool) Go(f func()) { p.GoAs(golabel.Labels{}, f) }

// GoAs is Go with the goroutine labeled l while f runs: f's work counts as
// l's loop in a CPU profile.
func (p *Pool) GoAs(l golabel.Labels, f func()) {
	t := task{f: f, labels: l}
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		next := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		next <- t // buffered: never waits, whether or not the goroutine parked yet
		return
	}
	p.started.Add(1)
	if p.closed {
		p.mu.Unlock()
		go t.run()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.run(t)
}

// run runs the task on the calling goroutine, under its labels.
func (t task) run() {
	t.labels.Set()
	t.f()
}

// run runs t, then the tasks handed to it while it waits idle, until p is
// closed or enough goroutines are idle already.
func (p *Pool) run(t task) {
	defer p.wg.Done()
	tasks := make(chan task, 1)
	for {
		t.run()
		p.mu.Lock()
		if p.closed || len(p.idle) >= p.maxIdle {
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, tasks)
		p.mu.Unlock()
		golabel.Labels{}.Set() // an idle goroutine works for nobody
		if t = <-tasks; t.f == nil {
			return // Close
		}
	}
}

// Idle returns how many goroutines wait for a task now.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Started returns how many goroutines Go has started since New: the
// tasks that found no idle goroutine.
func (p *Pool) Started() int64 { return p.started.Load() }

// Close ends the idle goroutines, and those running a task when their
// task returns. It does not wait: see Wait.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, tasks := range p.idle {
		tasks <- task{} // no function: end
	}
	p.idle = nil
}

// Wait waits, after Close, until every goroutine p kept has returned:
// those running a task return when it does.
func (p *Pool) Wait() { p.wg.Wait() }
