package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/protocol"
)

// Completion receives the outcome of a dispatch sent by DispatchFunc,
// exactly once: the Result and the lease on the blocks the dispatch
// allocated (the callee must close it), or an error as Dispatch returns
// it (the lease is closed then). It runs on the goroutine that read the
// Result (the reader of the worker's reply ring or socket), which the
// worker's other Results wait for, so it must never wait; what it leaves
// for the end of the batch of Results it belongs to goes to after.
type Completion func(res *protocol.Result, blocks *heavy.Lease, err error, after *After)

// After holds what completions leave for the end of a batch of Results:
// a reply queued on a client's connection is flushed once for all the
// Results of the batch, not once each.
type After struct{ fns []func() }

// Do runs f at the end of the batch.
func (a *After) Do(f func()) { a.fns = append(a.fns, f) }

// run runs what was left, in order, and empties a.
func (a *After) run() {
	for i, f := range a.fns {
		f()
		a.fns[i] = nil
	}
	a.fns = a.fns[:0]
}

// DispatchFunc is Dispatch without a goroutine waiting for the Result:
// it picks a worker (waiting while every one is full, as Dispatch does),
// sends dp and returns; done receives the outcome. The end of ctx sends
// the worker a Cancel and, if the process is still running KillGrace
// later, kills the worker, as for Dispatch; a Result that comes after
// ctx ended is dropped and done gets ctx's error. There is no
// redispatch: a crash is done's ErrWorkerCrashed.
func (p *Pool) DispatchFunc(ctx context.Context, dp *protocol.Dispatch, done Completion) {
	pr, err := p.pick(ctx)
	if err != nil {
		done(nil, nil, err, nil)
		return
	}
	pr.callFunc(ctx, dp, done)
}

// callFunc is call for DispatchFunc. Whoever takes the call out of
// pr.calls (deliver, stop, or a failed send here) completes it.
func (pr *proc) callFunc(ctx context.Context, dp *protocol.Dispatch, done Completion) {
	pr.mu.Lock()
	if pr.cause != nil {
		pr.mu.Unlock()
		pr.release()
		done(nil, nil, fmt.Errorf("%w: pid %d: %v", ErrWorkerCrashed, pr.pid, pr.cause), nil)
		return
	}
	pr.nextID++
	id := pr.nextID
	c := &call{done: done, ctx: ctx}
	if z := pr.pool.cfg.Heavy; z != nil {
		c.blocks = z.Lease(pr.slab, id)
	}
	c.d = *dp
	c.d.ID = id
	pr.calls[id] = c
	pr.mu.Unlock()
	seq, err := pr.sendDispatch(&c.d)
	pr.mu.Lock()
	if err != nil {
		if pr.calls[id] != c {
			// Answered before the write failed, or the worker died
			// meanwhile: that completes it.
			pr.mu.Unlock()
			return
		}
		delete(pr.calls, id)
		c.finished = true
		pr.mu.Unlock()
		pr.release()
		// A batched write can fail after the batch holding this
		// dispatch went out: the worker may have allocated for it.
		c.blocks.Close()
		if errors.Is(err, protocol.ErrFrameTooLarge) {
			done(nil, nil, protocol.Errorf(protocol.CodeBadRequest, "dispatch of %q: %v (raise --max-frame, or move large values to the HEAVY zone)", dp.Process, err), nil)
			return
		}
		pr.kill(fmt.Errorf("%w: send: %w", errDied, err))
		done(nil, nil, fmt.Errorf("%w: pid %d: %v", ErrWorkerCrashed, pr.pid, err), nil)
		return
	}
	c.seq = seq
	finished := c.finished
	pr.mu.Unlock()
	if finished || ctx.Done() == nil {
		return
	}
	// Registered after the send, when the Cancel can name the
	// dispatch's place in the request ring.
	stop := context.AfterFunc(ctx, func() { pr.cancelFunc(id) })
	pr.mu.Lock()
	if c.finished {
		pr.mu.Unlock()
		stop() // completed meanwhile
		return
	}
	c.stopCtx = stop
	pr.mu.Unlock()
}

// cancelFunc tells the worker that dispatch id's caller has gone, and
// kills the worker if the process is still running KillGrace later.
func (pr *proc) cancelFunc(id uint64) {
	pr.mu.Lock()
	c := pr.calls[id]
	var seq uint64
	if c != nil {
		seq = c.seq
	}
	pr.mu.Unlock()
	if c == nil {
		return // completed
	}
	pr.conn.Send(&protocol.Cancel{ID: id, Ring: seq})
	grace := pr.pool.cfg.KillGrace
	time.AfterFunc(grace, func() {
		pr.mu.Lock()
		running := pr.calls[id] == c
		pr.mu.Unlock()
		if running {
			pr.terminate(fmt.Errorf("%w: dispatch %d of %q still running %s after its deadline", errHung, id, c.d.Process, grace), grace)
		}
	})
}

// complete completes c, taken out of pr.calls (c.finished set under
// pr.mu, stopCtx read with it), with res, or with the worker's death
// when res is nil.
func (pr *proc) complete(c *call, stopCtx func() bool, res *protocol.Result, after *After) {
	if stopCtx != nil {
		stopCtx()
	}
	pr.release()
	if res != nil {
		pr.processed.Add(1)
	}
	if err := c.ctx.Err(); err != nil {
		c.blocks.Close()
		c.done(nil, nil, err, after) // too late: the caller has gone (or the worker died after)
		return
	}
	if res == nil {
		c.blocks.Close()
		c.done(nil, nil, fmt.Errorf("%w: pid %d: %v", ErrWorkerCrashed, pr.pid, pr.cause), after) // cause is set before the death is sent
		return
	}
	c.done(res, c.blocks, nil, after)
}
