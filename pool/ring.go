package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/theus-run/theus/internal/golabel"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/ring"
)

// Transports between the supervisor and its workers (Config.Transport).
const (
	// TransportRing carries Dispatches and Results in a shared-memory
	// ring pair per worker incarnation, for a worker that maps it; the
	// socket carries the rest (docs/PROTOCOL.md#rings).
	TransportRing = "ring"
	// TransportSocket carries everything over the socket.
	TransportSocket = "socket"
	// DefaultTransport is what Config.Transport "" means.
	DefaultTransport = TransportRing
)

// ringCapacity is what a pair is asked for: New rounds it up to fill one
// shm.Align (2 MiB) region, two rings of 1 MiB each.
const ringCapacity = 4096

// rings is a worker's ring pair, in use: the worker said in its Hello
// that it mapped it.
type rings struct {
	pair   *ring.Pair
	out    *ring.Shared       // the request ring: Dispatches
	stop   context.CancelFunc // ends readRing
	done   chan struct{}      // closed when readRing returned
	maxRec int                // the largest record either way: the ring's, within MaxFrame
}

// ringBufs holds the buffers that Dispatches are encoded into.
var ringBufs = sync.Pool{New: func() any { return new([]byte) }}

// encodeDispatch appends d as a ring record (its kind, then its msgpack
// body: a frame without its length) to dst. It takes d through no
// interface, so d does not escape: a caller's copy of it stays on the
// stack.
func encodeDispatch(dst []byte, d *protocol.Dispatch) ([]byte, error) {
	dst = append(dst, byte(d.Kind()))
	return d.MarshalMsg(dst)
}

// sendDispatch sends d through the request ring when the worker has one
// and d fits, else over the socket, and returns d's number in the ring
// (0: the socket). With wakes, a worker parked on its ring is not woken
// now but by wakes.Wake. It keeps no pointer to d, so that a caller's d
// may live on its stack: the ring's encoder takes no interface, and the
// socket, whose Send takes one (and encodes before it returns), gets a
// copy on the heap. With the socket transport that copy is an
// allocation per dispatch (96 B) that the ring, the default, does not
// make.
func (pr *proc) sendDispatch(d *protocol.Dispatch, wakes *Wakes) (uint64, error) {
	linger := pr.inflight.Load() > 1 // other dispatches to this worker are on their way
	if rs := pr.rings; rs != nil {
		bp := ringBufs.Get().(*[]byte)
		defer ringBufs.Put(bp)
		b, err := encodeDispatch((*bp)[:0], d)
		if cap(b) <= 1<<20 {
			*bp = b[:0]
		}
		if err != nil {
			return 0, fmt.Errorf("pool: encode dispatch: %w", err)
		}
		if len(b) <= rs.maxRec { // maxRec <= MaxFrame: a larger one is the socket's to refuse
			rs.out.SetPoll(time.Duration(pr.poll.Load())) // written with the record
			var n uint64
			var err error
			if wakes != nil {
				n, err = rs.out.AppendNoWake(b)
				if err == nil {
					wakes.add(rs.out)
				}
			} else {
				n, err = rs.out.Append(b, linger)
			}
			switch {
			case err == nil:
				return n, nil
			case errors.Is(err, ring.ErrFull):
				// The worker is behind by a ring: the socket takes it
				// (and pushes back through its write timeout).
			default: // closed (the worker is dead) or corrupt (kill it)
				return 0, fmt.Errorf("request ring: %w", err)
			}
		}
	}
	if wakes != nil {
		wakes.Wake() // the socket's write may wait: the records published before it must not
	}
	sd := new(protocol.Dispatch) // not d: through Send's interface d would escape, on the ring's way too
	*sd = *d
	if linger {
		return 0, pr.conn.Coalesce(sd)
	}
	return 0, pr.conn.Send(sd)
}

// readRing delivers the Results the worker writes in its reply ring
// until ctx ends (the worker is dead) or the ring is corrupt, which
// kills the worker. It never blocks beyond ctx: a worker that stops
// waking it is ended by the socket's or the process's end, which
// cancels ctx.
func (pr *proc) readRing(ctx context.Context, rs *rings) {
	defer close(rs.done)
	golabel.Set(golabel.WorkerRing, pr.pid) // slots repeat across plugins; PIDs do not
	r := rs.pair.Reader()
	var b ring.Batch
	var after After
	for {
		n, err := r.ReadBatch(&b, 0)
		if n > 0 {
			pr.lastSeen.Store(time.Now().UnixNano())
		}
		for i := range n {
			if !pr.deliverRecord(b.Record(i), rs.maxRec, &after) {
				after.run()
				return
			}
		}
		after.run() // the completions' flushes: once per batch
		if err == nil && n == 0 {
			err = r.Wait(ctx)
		}
		if err != nil {
			if ctx.Err() == nil {
				pr.kill(fmt.Errorf("%w: reply ring: %w", errDied, err))
			}
			return
		}
	}
}

// deliverRecord decodes one record of the reply ring, which must be a
// Result, and delivers it. It reports false when it killed the worker.
func (pr *proc) deliverRecord(rec []byte, max int, after *After) bool {
	if len(rec) > max {
		pr.kill(fmt.Errorf("%w: reply ring: a record of %d bytes, limit %d: %w", errDied, len(rec), max, protocol.ErrFrameTooLarge))
		return false
	}
	if len(rec) == 0 {
		pr.kill(fmt.Errorf("%w: reply ring: an empty record: %w", errDied, protocol.ErrBadFrame))
		return false
	}
	m, err := protocol.Decode(protocol.Kind(rec[0]), rec[1:])
	if err != nil {
		pr.kill(fmt.Errorf("%w: reply ring: %w", errDied, err))
		return false
	}
	res, ok := m.(*protocol.Result)
	if !ok {
		pr.kill(fmt.Errorf("%w: unexpected %s from worker in its reply ring", errDied, m.Kind()))
		return false
	}
	return pr.deliver(res, after)
}

// newRingPair makes the ring pair of a worker about to start and the
// worker's ends of its doorbells (request, reply), or none with
// TransportSocket. A parked reader of the supervisor is then a goroutine
// in the netpoller, not a thread in futex(2) (see ring.NewDoorbells).
func (p *Pool) newRingPair() (*ring.Pair, []*os.File, error) {
	if cmp.Or(p.cfg.Transport, DefaultTransport) == TransportSocket {
		return nil, nil, nil
	}
	pair, err := ring.New(ringCapacity)
	if err != nil {
		return nil, nil, fmt.Errorf("pool: ring pair (--worker-transport socket does without): %w", err)
	}
	sup, wrk, err := ring.NewDoorbells()
	if err != nil {
		pair.Close()
		return nil, nil, fmt.Errorf("pool: ring pair (--worker-transport socket does without): %w", err)
	}
	err = pair.SetDoorbells(sup.Req, sup.Rep) // keeps its copies
	sup.Close()
	if err != nil {
		pair.Close()
		wrk.Close()
		return nil, nil, fmt.Errorf("pool: ring pair: %w", err)
	}
	return pair, []*os.File{wrk.Req, wrk.Rep}, nil
}

// requestRing is pr's request ring, nil without rings.
func (pr *proc) requestRing() *ring.Shared {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.rings == nil {
		return nil
	}
	return pr.rings.out
}

// closePair closes a pair that no worker uses; nil is none.
func closePair(p *ring.Pair) {
	if p != nil {
		p.Close()
	}
}

// useRings starts carrying Dispatches and Results in pair, which the
// worker mapped, until the worker dies.
func (pr *proc) useRings(pair *ring.Pair) {
	ctx, stop := context.WithCancel(context.Background())
	out := ring.NewShared(pair.Writer())
	rs := &rings{pair: pair, out: out, stop: stop, done: make(chan struct{}), maxRec: min(out.MaxRecord(), pr.pool.cfg.MaxFrame)}
	pr.mu.Lock()
	pr.rings = rs
	dead := pr.cause != nil
	pr.mu.Unlock()
	if dead {
		stop() // stop ran before rs was there to stop
	}
	go pr.readRing(ctx, rs)
}

// close waits for readRing, then unmaps the pair, once the worker
// is dead (stop canceled readRing).
func (rs *rings) close() {
	<-rs.done
	rs.out.Close()
	rs.pair.Close()
}
