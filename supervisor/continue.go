package supervisor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/internal/deadline"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// The continuation path of a client's Execute: no goroutine waits for
// the worker. The connection's reader checks the Execute, takes the
// snapshot, sends the Dispatch and reads on; the reader of the worker's
// reply ring (pool.DispatchFunc) turns the Result into a delta, commits
// it (cas.Runner.First, which never waits) and queues the reply, and the
// replies of one batch of Results go to each client in one write. Two
// goroutine hand-offs per execute are gone: the reader's to the next
// reader, and the Result's to the goroutine waiting for it.
//
// Whatever may wait goes to a goroutine of its own, as before
// (runAdmitted): an execute on contended keys from the start, or whose
// op id the store knows already (a repeat); after a conflict or at a VIP
// ticket's gate, the attempts that follow; a crashed worker's
// redispatch; a reply the client's socket cannot take now. With
// durability sync a reply waits for the disk with no goroutine either:
// the journal's notifier sends it (awaitDisk).

// continuable reports whether a client's Execute may take the
// continuation path: the store is this process's (not etcd) and no audit
// recipe may judge it.
func (s *Supervisor) continuable() bool {
	return !s.cfg.GoroutinePerExecute && s.etcd == nil && s.audit == nil
}

// waitsForDisk reports whether the reply to what committed (or read) at
// v must wait for the disk (durability sync, v not written yet).
func (s *Supervisor) waitsForDisk(v cas.Version) bool {
	return s.journal != nil && s.cfg.Durability == durable.Sync && s.journal.Durable() < v
}

// testHookDispatched, set by a test, runs in dispatch between the send
// and watching the context.
var testHookDispatched atomic.Pointer[func(wait bool)]

// continued is an Execute on the continuation path, from its dispatch to
// its reply.
type continued struct {
	execution
	s      *Supervisor
	cn     *clientConn
	digest cas.OpDigest      // of its op id (opDigest)
	owner  string            // named at the first tensor it claims (outcomeOf)
	snap   cas.Snapshot      // kept here: one allocation for the execute
	dc     *deadline.Context // its Ender is k while the dispatch runs
	tries  int               // redispatches after crashes

	mu        sync.Mutex
	call      pool.Call // the dispatch in flight, for Ended
	sends     int       // dispatches sent: the latest sets call
	completed bool      // the dispatch is over: dc's Ender is no longer dispatch's to set

	report  cas.Report  // a commit waiting for the disk (awaitDisk)
	ok      bool        // report is the reply's (else the error settle put there)
	diskAt  cas.Version // the version the reply names, which waits for the disk
	replied atomic.Bool // onDisk's reply is filled: its sender is chosen
	queued  bool        // OnDisk queued the reply, for its Later (the notifier's)
}

// invocation is k's, for the Runner. Its owner is named at the first
// tensor k claims (outcomeOf): First, which never waits for a ticket, is
// the one other reader of it.
func (k *continued) invocation() cas.Invocation {
	return cas.Invocation{Contract: k.c, OpID: k.req.OpID, OpDigest: k.digest, Owner: k.owner, Start: k.start}
}

// Ended cancels the dispatch in flight: the execute's context ended (its
// timeout, or the client went). A goroutine of dc's own runs it.
func (k *continued) Ended() {
	k.mu.Lock()
	call := k.call
	k.mu.Unlock()
	call.Cancel()
}

// dispatch sends dp, k's Dispatch (waiting for a worker with room when
// wait), and watches dc for it; it reports false, having done nothing,
// when no worker has room and it may not wait. Without wait it is the
// connection's reader, which wakes the worker before it reads again
// (cn.wakes), once for all the dispatches of the frames it read at once.
// The pool keeps no pointer to dp: it lives on the caller's stack.
func (k *continued) dispatch(wait bool, dp *protocol.Dispatch) bool {
	k.mu.Lock()
	k.sends++
	send := k.sends
	k.mu.Unlock()
	var call pool.Call
	if wait {
		call = k.p.pool.DispatchFunc(k.dc, dp, k)
	} else {
		var ok bool
		if call, ok = k.p.pool.TryDispatchFunc(k.dc, dp, k, &k.cn.wakes); !ok {
			return false
		}
	}
	if h := testHookDispatched.Load(); h != nil {
		(*h)(wait) // a goroutine descheduled here: the Result may come first
	}
	k.mu.Lock()
	// Not when a redispatch sent another since (its worker died at
	// once), nor for none (completed here: a failed send).
	if k.sends == send && call != (pool.Call{}) {
		k.call = call
	}
	if !k.completed {
		// Under k.mu: a completion that came first set completed, and
		// dc's Ender is its own now (awaitDisk's), which this must not
		// replace; one that comes after replaces this one.
		k.dc.OnEnd(k)
	}
	k.mu.Unlock()
	return true
}

// startExecute runs m on the continuation path, or reports false, having
// done nothing, when m must run on a goroutine of its own (serveExecute).
// The caller holds a slot of cn for m; the reply gives it back.
func (s *Supervisor) startExecute(cn *clientConn, m *protocol.Execute) bool {
	if !s.continuable() || !s.enter() {
		return false // a refused one is refused there
	}
	cn.wg.Add(1) // until the reply is written, or handed to a writer
	k := &continued{s: s, cn: cn}
	x := &k.execution
	if !s.check(x, m, time.Now()) {
		s.executed(m.Process, x.start, &x.reply)
		s.answer(cn, &x.reply)
		return true
	}
	k.digest = opDigest(m)
	if !s.runner.Outside(k.invocation()) {
		s.gos.GoAs(cn.labels, func() { s.waitFor(cn, x, cas.Prior{}) })
		return true
	}
	s.store.Take(&k.snap)
	k.dc = s.wheel.WithDeadline(cn.ctx, x.start.Add(x.timeout))
	var dp protocol.Dispatch
	if err := s.dispatchFor(k.dc, &dp, x, &k.snap, 1); err != nil {
		k.finish(cas.Report{}, &cas.RunError{Process: m.Process, Attempts: 1, Err: err}, nil, nil)
		return true
	}
	if !k.dispatch(false, &dp) {
		// Every worker is full: wait for one on a goroutine, not here,
		// where the client's other requests wait to be read.
		s.gos.GoAs(k.cn.labels, k.dispatchWaiting)
	}
	return true
}

// dispatchWaiting makes k's Dispatch again and sends it, waiting for a
// worker with room, on a goroutine that may wait: after every worker was
// full, and to redispatch after a crash. (k keeps no Dispatch: it is
// made from k's snapshot, which k holds until its commit.) A Dispatch
// that cannot be made completes k with the error.
func (k *continued) dispatchWaiting() {
	var dp protocol.Dispatch
	if err := k.s.dispatchFor(k.dc, &dp, &k.execution, &k.snap, 1); err != nil {
		k.Complete(nil, nil, err, nil)
		return
	}
	k.dispatch(true, &dp)
}

// Complete is the Dispatch's pool.Completion: on the reader of the
// worker's ring (or socket), or on the goroutine that saw the worker die.
func (k *continued) Complete(res *protocol.Result, blocks *heavy.Lease, err error, after *pool.After) {
	s, x := k.s, &k.execution
	if err != nil && s.redispatch(k.dc, x, err, k.tries) {
		// A death (on the goroutine that saw it) or a failed send (on
		// the connection's reader, which must not wait for a worker):
		// the redispatch, which may wait, goes to a goroutine.
		k.tries++
		s.gos.GoAs(k.cn.labels, k.dispatchWaiting)
		return
	}
	k.mu.Lock()
	k.completed = true
	k.mu.Unlock()
	k.dc.OnEnd(nil) // the dispatch is over: nothing to cancel
	var out cas.Outcome
	var refs []heavy.Ref
	if err == nil {
		out, refs, err = s.outcomeOf(x, &k.owner, res, blocks)
	}
	if err == nil {
		err = s.checkSchema(out.Delta)
	}
	r, again, err := s.runner.First(k.dc, k.invocation(), &k.snap, out, err, time.Since(x.start))
	if again {
		// A conflict, or a commit that would wait for a VIP ticket: the
		// next attempts may wait, so they go to a goroutine.
		s.zone.Abort(refs)
		k.dc.Cancel()
		s.gos.GoAs(k.cn.labels, func() { s.waitFor(k.cn, x, cas.Prior{Attempts: r.Attempts, Conflicts: r.Conflicts}) })
		return
	}
	if v, ok := replyNames(r, err); ok && s.waitsForDisk(v) {
		k.awaitDisk(r, err, v, refs, after)
		return
	}
	k.finish(r, err, refs, after)
}

// awaitDisk settles k, whose reply (r, or err) names version v, which
// must be on disk first, and leaves that reply to the journal's notifier
// (or to k's context, if it ends first): no goroutine waits for the disk.
func (k *continued) awaitDisk(r cas.Report, err error, v cas.Version, refs []heavy.Ref, after *pool.After) {
	k.snap.Release()
	k.ok = k.s.settle(&k.execution, r, err, refs)
	k.report, k.diskAt = r, v
	d := (*onDisk)(k)
	k.dc.OnEnd(d)
	if done, err := k.s.journal.Notify(v, d); done && d.fill(err) {
		k.end(after) // on disk since waitsForDisk asked, or never will be
	}
}

// onDisk is a continued whose reply waits for the disk. The journal's
// notifier (OnDisk) or the end of its context (Ended), whichever comes
// first, replies; the other finds it replied.
type onDisk continued

// OnDisk is the journal's word on k's version (durable.Waiter). The
// reply is queued now and written in Later, once per connection for all
// the replies of the batch.
func (d *onDisk) OnDisk(err error) {
	if d.fill(err) {
		(*continued)(d).queue()
		d.queued = true
	}
}

// Later writes the reply OnDisk queued (durable.Later).
func (d *onDisk) Later() {
	if d.queued {
		(*continued)(d).Later()
	}
}

// Ended: k's context ended (its timeout, or the client went) before its
// version was on disk.
func (d *onDisk) Ended() {
	err := d.dc.Err()
	if err == nil { // never: an Ender runs once its context has ended
		err = context.Canceled
	}
	if d.fill(err) {
		(*continued)(d).end(nil)
	}
}

// fill fills the reply with the report, or with why the disk did not
// take it (err), and reports true, once: the first caller sends it.
func (d *onDisk) fill(err error) bool {
	if !d.replied.CompareAndSwap(false, true) {
		return false
	}
	d.dc.OnEnd(nil)
	d.s.afterDisk(&d.execution, d.ok, d.report, diskErr(d.diskAt, err))
	return true
}

// finish reports the invocation's end and queues the reply, written at
// the end of the batch after belongs to (at once when after is nil).
func (k *continued) finish(r cas.Report, err error, refs []heavy.Ref, after *pool.After) {
	s := k.s
	k.snap.Release() // First released it; an early failure did not
	// Waits for nothing: Complete sent that wait to awaitDisk.
	s.report(k.dc, &k.execution, r, err, refs)
	k.end(after)
}

// end sends k's reply, written at the end of the batch after belongs to
// (at once when after is nil).
func (k *continued) end(after *pool.After) {
	k.queue()
	if after == nil {
		k.Later()
		return
	}
	after.Do(k)
}

// queue ends k's context and queues its reply, which Later writes.
func (k *continued) queue() {
	k.dc.Cancel()
	k.s.executed(k.req.Process, k.start, &k.reply)
	if qerr := replyWith(k.cn.c.Queue, &k.reply); qerr != nil {
		k.cn.end()
	}
}

// Later writes what k's connection has queued: k's reply and those
// queued with it in the batch (see flush).
func (k *continued) Later() { k.s.flush(k.cn) }

// waitFor runs x on this goroutine, which may wait, from the attempts
// prior made, and replies.
func (s *Supervisor) waitFor(cn *clientConn, x *execution, prior cas.Prior) {
	s.runAdmitted(cn.ctx, x, nil, nil, prior)
	s.executed(x.req.Process, x.start, &x.reply)
	s.answer(cn, &x.reply)
}

// answer queues rep on cn and writes it (flush).
func (s *Supervisor) answer(cn *clientConn, rep *protocol.Reply) {
	if err := replyWith(cn.c.Queue, rep); err != nil {
		cn.end()
	}
	s.flush(cn)
}

// flush writes what cn has queued without waiting: what the socket
// cannot take now goes to a goroutine that may. An execute whose reply
// was queued is then over: it leaves the drain's count and cn's slots.
// A client that cannot be written to is gone: its connection ends.
func (s *Supervisor) flush(cn *clientConn) {
	defer cn.wg.Done()
	defer s.over(cn)
	done, err := cn.c.FlushNoWait()
	if err != nil {
		cn.end()
		return
	}
	if !done {
		cn.wg.Add(1)
		s.gos.GoAs(cn.labels, func() {
			defer cn.wg.Done()
			if cn.c.Flush() != nil {
				cn.end()
			}
		})
	}
}

// over ends an execute of cn: it leaves the drain's count and gives its
// slot back.
func (s *Supervisor) over(cn *clientConn) {
	s.inflight.Done()
	<-cn.slots
}
