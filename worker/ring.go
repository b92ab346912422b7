package worker

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/ring"
)

// EnvRingFD names the descriptors of the ring pair through which
// Dispatches and Results may travel: "M,Q,P", the sealed memfd, then the
// doorbells: the read end of the pipe that wakes the consumer of the
// request ring (this worker) and the write end of the one that wakes the
// consumer of the reply ring (the supervisor). Unset: the socket only.
const EnvRingFD = "THEUS_RING_FD"

// maxRingPoll bounds how long the worker polls its request ring before
// it parks, whatever the supervisor advises (ring.Writer.SetPoll). It
// polls only when no process runs: a process would share its CPU with
// the poll, and at GOMAXPROCS 1 wait out the poll for any descriptor it
// waits on. A variable for the tests.
var maxRingPoll = time.Millisecond // pool.MaxWorkerPoll (the SDK does not import the pool)

// idle reports whether no dispatch is running (or registered to run).
func (s *server) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running) == 0
}

// ringPolls counts the idle ring readers' polls (PollAdvised calls), in
// every worker of this process: for the tests.
var ringPolls atomic.Uint64

// idle is called when the worker's last running process ended: a ring
// reader that parked while a process ran (it found the worker busy) is
// nudged to look again, and poll if the supervisor advises it. A reader
// that parked after its poll ran out is left alone: the end of a
// Dispatch that came over the socket must not make it poll again.
func (rs *rings) idle() {
	if !rs.parkedBusy.Load() {
		return
	}
	if r := rs.pair.Reader(); r.Advice() > 0 {
		r.Nudge()
	}
}

// rings is the worker's side of the ring pair: it reads Dispatches from
// the request ring and writes Results to the reply ring.
type rings struct {
	pair    *ring.Pair
	out     *ring.Shared  // the reply ring
	maxRec  int           // the largest record either way
	maxPoll time.Duration // maxRingPoll when mapped
	// parkedBusy: the ring's reader parks (or is about to) because a
	// process runs; the process that leaves the worker idle nudges it.
	parkedBusy atomic.Bool
	batch      ring.Batch // owned by the goroutine reading the ring now
	begun      []begun    // its Dispatches of the batch; reused likewise

	// Guarded by server.mu.
	read  uint64              // request records read, each Dispatch registered
	early map[uint64]struct{} // Cancels of Dispatches still in the ring, by id
}

// mapRings maps the ring pair named by EnvRingFD, or returns nil when
// there is none or it cannot be mapped (then the socket carries
// everything, and the Hello says so).
func mapRings(log *zerolog.Logger, sockFD, maxFrame int) *rings {
	v := os.Getenv(EnvRingFD)
	if v == "" {
		return nil
	}
	var fds [3]int
	parts := strings.Split(v, ",")
	for i := range fds {
		n := -1
		if len(parts) == len(fds) {
			n, _ = strconv.Atoi(parts[i])
		}
		if n < 3 || n == sockFD {
			log.Warn().Str(EnvRingFD, v).Msg("not three descriptor numbers >= 3: using the socket only")
			return nil
		}
		fds[i] = n
	}
	req, rep := os.NewFile(uintptr(fds[1]), "theus-ring-req-bell"), os.NewFile(uintptr(fds[2]), "theus-ring-rep-bell")
	defer req.Close() // the pair keeps copies
	defer rep.Close()
	p, err := ring.Map(os.NewFile(uintptr(fds[0]), "theus-ring"), ring.Worker)
	if err != nil {
		log.Warn().Err(err).Msg("cannot map the ring pair: using the socket only")
		return nil
	}
	if err := p.SetDoorbells(req, rep); err != nil {
		p.Close()
		log.Warn().Err(err).Msg("cannot use the ring pair's doorbells: using the socket only")
		return nil
	}
	out := ring.NewShared(p.Writer())
	if maxFrame <= 0 {
		maxFrame = protocol.DefaultMaxFrame
	}
	return &rings{pair: p, out: out, maxRec: min(out.MaxRecord(), maxFrame), maxPoll: maxRingPoll, early: map[uint64]struct{}{}}
}

// close unmaps the pair; nothing may read or write it any more.
func (rs *rings) close() {
	rs.out.Close()
	rs.pair.Close()
}

// readRing reads Dispatches from the request ring until ctx ends. Like
// readUntilDispatch, it registers every Dispatch of a batch, hands the
// reading to a kept goroutine and runs the last one itself.
func (s *server) readRing(ctx context.Context) {
	rs := s.rings
	r := rs.pair.Reader()
	for {
		n, err := r.ReadBatch(&rs.batch, 0)
		ds := rs.begun[:0]
		for i := range n {
			d, err := s.beginRecord(ctx, rs.batch.Record(i))
			if err != nil {
				s.fail(err)
				return
			}
			if d.dp != nil {
				ds = append(ds, d)
			}
		}
		if len(ds) > 0 {
			last := ds[len(ds)-1]
			for _, d := range ds[:len(ds)-1] {
				s.wg.Add(1)
				s.gos.Go(func() {
					defer s.wg.Done()
					s.run(d.ctx, d.cancel, d.dp)
				})
			}
			clear(ds) // the next reader reuses it: keep no context alive
			rs.begun = ds[:0]
			if err == nil {
				s.wg.Add(1)
				s.gos.Go(s.nextRingReader)
			}
			s.run(last.ctx, last.cancel, last.dp)
		}
		if err == nil && len(ds) > 0 {
			return
		}
		if err == nil && n == 0 {
			if s.idle() {
				ringPolls.Add(1)
				if r.PollAdvised(ctx, rs.maxPoll) {
					continue
				}
			} else {
				// Busy: park, and have the process that leaves the
				// worker idle nudge the wait (rings.idle). The look
				// again after the flag closes the window in which the
				// last process ends before it is set.
				rs.parkedBusy.Store(true)
				if s.idle() {
					rs.parkedBusy.Store(false)
					continue
				}
			}
			err = r.Wait(ctx)
			rs.parkedBusy.Store(false)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("worker: request ring: %w", err))
			}
			return
		}
	}
}

// begun is a Dispatch registered, ready to run.
type begun struct {
	ctx    context.Context
	cancel canceler
	dp     *protocol.Dispatch
}

// beginRecord decodes one request record and registers its Dispatch
// (nil dp for a record that is not one), cancelling it at once when its
// Cancel came first over the socket.
func (s *server) beginRecord(ctx context.Context, rec []byte) (begun, error) {
	rs := s.rings
	var dp *protocol.Dispatch
	if len(rec) == 0 || len(rec) > rs.maxRec {
		return begun{}, fmt.Errorf("worker: request ring: a record of %d bytes: %w", len(rec), protocol.ErrBadFrame)
	}
	m, err := protocol.Decode(protocol.Kind(rec[0]), rec[1:])
	if err != nil {
		return begun{}, fmt.Errorf("worker: request ring: %w", err)
	}
	dp, ok := m.(*protocol.Dispatch)
	if !ok {
		s.mu.Lock()
		rs.read++
		s.mu.Unlock()
		return begun{}, nil
	}
	dctx, cancel := s.begin(ctx, dp)
	s.mu.Lock()
	rs.read++
	if _, ok := rs.early[dp.ID]; ok {
		delete(rs.early, dp.ID)
		cancel.Cancel()
	}
	s.mu.Unlock()
	return begun{dctx, cancel, dp}, nil
}

// cancelLocked cancels dispatch c.ID, or keeps the Cancel until its Dispatch
// is read when it is still in the request ring (the socket overtook the
// ring). s.mu is held.
func (s *server) cancelLocked(c *protocol.Cancel) {
	if cancel := s.running[c.ID]; cancel != nil {
		cancel.Cancel()
		return
	}
	if rs := s.rings; rs != nil && c.Ring > rs.read {
		rs.early[c.ID] = struct{}{}
	} // else it is over: the Cancel crossed its Result
}

// fail ends Serve with err, unless it is ending already.
func (s *server) fail(err error) {
	select {
	case s.done <- err:
	default:
	}
}

var resultBufs = sync.Pool{New: func() any { return new([]byte) }}

// replyRing writes res to the reply ring, and reports false when it did
// not fit there now (the caller sends it over the socket).
func (s *server) replyRing(res *protocol.Result, linger bool) bool {
	rs := s.rings
	bp := resultBufs.Get().(*[]byte)
	defer resultBufs.Put(bp)
	b := append((*bp)[:0], byte(protocol.KindResult))
	b, err := res.MarshalMsg(b)
	if cap(b) <= 1<<20 {
		*bp = b[:0]
	}
	if err != nil || len(b) > rs.maxRec {
		return false
	}
	_, err = rs.out.Append(b, linger)
	return err == nil
}
