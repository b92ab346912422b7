package pool

import (
	"context"
	"fmt"
	"time"

	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/ring"
)

// Completion receives the outcome of a dispatch sent by DispatchFunc,
// exactly once: the Result and the lease on the blocks the dispatch
// allocated (the callee must close it), or an error as Dispatch returns
// it (the lease is closed then). It runs on the goroutine that read the
// Result (the reader of the worker's reply ring or socket), which the
// worker's other Results wait for, so it must never wait; what it leaves
// for the end of the batch of Results it belongs to goes to after.
type Completion interface {
	Complete(res *protocol.Result, blocks *heavy.Lease, err error, after *After)
}

// After holds what completions leave for the end of a batch of Results:
// a reply queued on a client's connection is flushed once for all the
// Results of the batch, not once each.
type After struct{ todo []Later }

// Later is what a completion leaves for the end of its batch.
type Later interface{ Later() }

// Do calls l.Later at the end of the batch.
func (a *After) Do(l Later) { a.todo = append(a.todo, l) }

// run calls what was left, in order, and empties a.
func (a *After) run() {
	for i, l := range a.todo {
		l.Later()
		a.todo[i] = nil
	}
	a.todo = a.todo[:0]
}

// DispatchFunc is Dispatch without a goroutine waiting for the Result:
// it picks a worker (waiting while every one is full, as Dispatch does),
// sends dp and returns; done receives the outcome. It does not watch
// ctx: when ctx ends the caller calls the returned Call's Cancel, which
// tells the worker and, if the process is still running KillGrace
// later, kills the worker, as Dispatch does when its context ends. A
// Result that comes after ctx ended is dropped and done gets ctx's
// error. There is no redispatch: a crash is done's ErrWorkerCrashed.
func (p *Pool) DispatchFunc(ctx context.Context, dp *protocol.Dispatch, done Completion) Call {
	pr, err := p.pick(ctx)
	if err != nil {
		done.Complete(nil, nil, err, nil)
		return Call{}
	}
	return pr.callFunc(ctx, dp, done, nil)
}

// TryDispatchFunc is DispatchFunc when a worker has room for dp now. It
// reports false, having done nothing, when none has (every worker is
// starting or has MaxInFlight dispatches): the caller may then wait for
// one in DispatchFunc, on a goroutine that may wait. With wakes, a
// worker that parks on its ring is woken by wakes.Wake, not now.
func (p *Pool) TryDispatchFunc(ctx context.Context, dp *protocol.Dispatch, done Completion, wakes *Wakes) (Call, bool) {
	p.mu.Lock()
	pr := p.pickLocked()
	p.mu.Unlock()
	if pr == nil {
		return Call{}, false
	}
	return pr.callFunc(ctx, dp, done, wakes), true
}

// Wakes holds the workers that dispatches were sent to without waking
// them (TryDispatchFunc with a Wakes): a caller that sends a batch of
// dispatches wakes each worker once, with Wake, before it may block. It
// is one goroutine's.
type Wakes struct{ outs []*ring.Shared }

func (w *Wakes) add(out *ring.Shared) {
	for _, o := range w.outs {
		if o == out {
			return
		}
	}
	w.outs = append(w.outs, out)
}

// Wake wakes each worker that was sent a dispatch since the last Wake,
// if it parks.
func (w *Wakes) Wake() {
	for i, o := range w.outs {
		o.Wake()
		w.outs[i] = nil
	}
	w.outs = w.outs[:0]
}

// Call is a dispatch sent by DispatchFunc; the zero Call is none.
type Call struct {
	pr *proc
	id uint64
}

// Cancel tells the worker that the dispatch's caller has gone, and kills
// the worker if the process is still running KillGrace later. After the
// completion it does nothing. It may wait for the worker's socket: call
// it where that is fine (not on a ring's reader).
func (c Call) Cancel() {
	if c.pr != nil {
		c.pr.cancelFunc(c.id)
	}
}

// callFunc is call for DispatchFunc. Whoever takes the call out of
// pr.calls (deliver, stop, or a failed send here) completes it.
func (pr *proc) callFunc(ctx context.Context, dp *protocol.Dispatch, done Completion, wakes *Wakes) Call {
	pr.mu.Lock()
	if pr.cause != nil {
		pr.mu.Unlock()
		pr.release()
		done.Complete(nil, nil, fmt.Errorf("%w: pid %d: %v", ErrWorkerCrashed, pr.pid, pr.cause), nil)
		return Call{}
	}
	pr.nextID++
	id := pr.nextID
	c := &call{done: done, ctx: ctx, process: dp.Process}
	if z := pr.pool.cfg.Heavy; z != nil {
		// In the call, which is never recycled: the completion may keep
		// the lease as long as it likes.
		c.blocks = z.LeaseIn(&c.lease, pr.slab, id)
	}
	// Copied before the call is filed: from then on a death may complete
	// it, and done may reuse dp. On the stack: sendDispatch keeps no
	// pointer to it.
	d := *dp
	d.ID = id
	pr.calls[id] = c
	pr.mu.Unlock()
	seq, err := pr.sendDispatch(&d, wakes)
	pr.mu.Lock()
	if err != nil {
		if pr.calls[id] != c {
			// Answered before the write failed, or the worker died
			// meanwhile: that completes it.
			pr.mu.Unlock()
			return Call{}
		}
		delete(pr.calls, id)
		pr.mu.Unlock()
		pr.release()
		// A batched write can fail after the batch holding this
		// dispatch went out: the worker may have allocated for it.
		c.blocks.Close()
		done.Complete(nil, nil, pr.sendFailed(dp, err), nil)
		return Call{}
	}
	c.seq = seq // read by cancelFunc under pr.mu
	pr.mu.Unlock()
	return Call{pr: pr, id: id}
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
	owed := pr.owed()
	pr.conn.Send(&protocol.Cancel{ID: id, Ring: seq})
	grace := pr.pool.cfg.KillGrace
	// A ring that still owes the same wake-up a grace later was never
	// woken for its dispatches, this one perhaps among them: the worker
	// is not hung. It is woken (it reads the Cancel's dispatch and drops
	// it) and gets one more grace. A debt paid is never owed again
	// (record numbers grow), so the next look calls it hung.
	var check func()
	check = func() {
		pr.mu.Lock()
		running := pr.calls[id] == c
		pr.mu.Unlock()
		if !running {
			return
		}
		if pr.payLate(owed, "a dispatch's deadline") { // only if owed is still the debt
			time.AfterFunc(grace, check)
			return
		}
		pr.terminate(pr.hung(id, c.process, grace), grace)
	}
	time.AfterFunc(grace, check)
}

// complete completes c, taken out of pr.calls under pr.mu by its
// caller, with res, or with the worker's death when res is nil.
func (pr *proc) complete(c *call, res *protocol.Result, after *After) {
	pr.release()
	if res != nil {
		pr.processed.Add(1)
	}
	if err := c.ctx.Err(); err != nil {
		c.blocks.Close()
		c.done.Complete(nil, nil, err, after) // too late: the caller has gone (or the worker died after)
		return
	}
	if res == nil {
		c.blocks.Close()
		c.done.Complete(nil, nil, fmt.Errorf("%w: pid %d: %v", ErrWorkerCrashed, pr.pid, pr.cause), after) // cause is set before the death is sent
		return
	}
	c.done.Complete(res, c.blocks, nil, after)
}
