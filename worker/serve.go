package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/theus-run/theus/internal/deadline"
	"github.com/theus-run/theus/internal/gopool"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// The environment through which the supervisor launches a worker.
const (
	EnvFD            = "THEUS_WORKER_FD"      // the inherited socketpair's descriptor
	EnvSupervisorPID = "THEUS_SUPERVISOR_PID" // the parent that must still be alive
	EnvMaxFrame      = "THEUS_MAX_FRAME"      // the frame limit, in bytes
)

// ErrNotLaunched is returned by Serve in a program that the supervisor did
// not launch.
var ErrNotLaunched = errors.New("worker: not launched by theus-supervisor (run it with: theus-supervisor --plugin PATH)")

// Launched reports whether this program was launched as a worker. A
// binary that is both a supervisor and a worker tests it first thing.
func Launched() bool { return os.Getenv(EnvFD) != "" }

// Main serves defs until the supervisor goes away, then exits: 0 when the
// supervisor closed the connection, 1 with the reason on stderr otherwise.
func Main(defs ...Def) {
	log := zerolog.New(os.Stderr).With().Timestamp().Int("pid", os.Getpid()).Logger()
	if err := Serve(log.WithContext(context.Background()), defs...); err != nil {
		log.Error().Err(err).Msg("worker exits")
		os.Exit(1)
	}
	os.Exit(0)
}

// Serve runs the handshake on the inherited socket, then runs every
// Dispatch in its own goroutine until the supervisor closes the socket
// (nil) or ctx ends, and waits up to ExitGrace for running processes.
// Logs go to zerolog.Ctx(ctx).
func Serve(ctx context.Context, defs ...Def) error {
	reg, err := registry(defs)
	if err != nil {
		return err
	}
	fdStr := os.Getenv(EnvFD)
	if fdStr == "" {
		return ErrNotLaunched
	}
	fd, err := strconv.Atoi(fdStr)
	if err != nil || fd < 3 {
		return fmt.Errorf("worker: %s=%q: want a descriptor number >= 3", EnvFD, fdStr)
	}
	if want := os.Getenv(EnvSupervisorPID); want != "" && want != strconv.Itoa(os.Getppid()) {
		return fmt.Errorf("worker: supervisor %s is gone (parent is %d)", want, os.Getppid())
	}
	maxFrame, _ := strconv.Atoi(os.Getenv(EnvMaxFrame))
	f := os.NewFile(uintptr(fd), "theus-supervisor")
	conn, err := ipc.FileConn(f, ipc.Options{MaxFrame: maxFrame})
	f.Close()
	if err != nil {
		return err
	}
	defer conn.Close()
	var sl *slabs
	if v := os.Getenv(EnvHeavyFD); v != "" {
		hfd, err := strconv.Atoi(v)
		if err != nil || hfd < 3 || hfd == fd {
			return fmt.Errorf("worker: %s=%q: want a descriptor number >= 3", EnvHeavyFD, v)
		}
		sl = newSlabs(os.NewFile(uintptr(hfd), "theus-heavy"))
		go sl.read(zerolog.Ctx(ctx))
	}
	rs := mapRings(zerolog.Ctx(ctx), fd, maxFrame)
	if err := handshake(conn, defs, sl, rs != nil); err != nil {
		if sl != nil {
			sl.close(true)
		}
		if rs != nil {
			rs.close()
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// The dispatches' deadlines are kept by a Wheel, under a Scope of
	// ctx: a dispatch starts no runtime timer and registers nothing
	// with ctx.
	wheel := deadline.New()
	defer wheel.Close()
	sc := wheel.Scope(ctx)
	defer sc.Close()
	s := &server{conn: conn, reg: reg, running: map[uint64]canceler{}, grants: map[uint64]chan *protocol.Grant{}, done: make(chan error, 1), gos: gopool.New(dispatchGoroutines), wheel: wheel}
	defer s.gos.Close() // the kept goroutines end; the running ones when their process returns
	if sl != nil {
		s.heavy = &tensors{slabs: sl, alloc: s.alloc}
	}
	// The rings before any reader: a Cancel that the socket's reader
	// reads right after the Hello looks there for a Dispatch still in the
	// request ring. Set after the socket's reader started, such a Cancel
	// found no rings and was dropped, and its Dispatch ran until its
	// worker was killed for it (pool's TestCancelRightAfterDispatch,
	// under load).
	s.rings = rs
	// A reader that takes a Dispatch hands the reading to the next one:
	// made once here, not once per Dispatch.
	s.nextReader = func() {
		defer s.wg.Done()
		s.read(sc)
	}
	s.nextRingReader = func() {
		defer s.wg.Done()
		s.readRing(sc)
	}
	s.wg.Go(func() { s.read(sc) })
	if rs != nil {
		s.wg.Go(func() { s.readRing(sc) })
	}
	err = <-s.done
	cancel()
	// Processes see their context canceled; those that ignore it get
	// ExitGrace, then Serve returns without them: their results could not
	// be delivered anyway.
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(ExitGrace)
	defer t.Stop()
	finished := true
	select {
	case <-done:
	case <-t.C:
		finished = false
		zerolog.Ctx(ctx).Warn().Msg("processes still running after the supervisor left; exiting without them")
	}
	if sl != nil {
		sl.close(finished) // unmapping under a running process would crash it
	}
	if rs != nil && finished {
		rs.close() // else a process still running may write its result there
	}
	return err
}

// ExitGrace is how long Serve waits, once the supervisor has gone, for
// running processes to return.
const ExitGrace = time.Second

func registry(defs []Def) (map[string]Def, error) {
	if len(defs) == 0 {
		return nil, errors.New("worker: no processes to serve")
	}
	reg := make(map[string]Def, len(defs))
	for _, d := range defs {
		if d.err != nil {
			return nil, d.err
		}
		if d.run == nil {
			return nil, fmt.Errorf("worker: process %q: build it with worker.Process", d.Name)
		}
		if _, dup := reg[d.Name]; dup {
			return nil, fmt.Errorf("worker: process %q defined twice", d.Name)
		}
		reg[d.Name] = d
	}
	return reg, nil
}

func build() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "unknown"
}

func handshake(conn *ipc.Conn, defs []Def, sl *slabs, mappedRing bool) error {
	h := &protocol.Hello{Magic: protocol.Magic, Protocol: protocol.Version, Build: build(), PID: int64(os.Getpid()), Ring: mappedRing}
	for _, d := range defs {
		h.Processes = append(h.Processes, d.info())
	}
	if err := conn.Send(h); err != nil {
		return fmt.Errorf("worker: handshake: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	m, err := conn.Recv()
	if err != nil {
		return fmt.Errorf("worker: handshake: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	switch m := m.(type) {
	case *protocol.Welcome:
		return mapOwnSlab(conn, m, sl)
	case *protocol.Refuse:
		return fmt.Errorf("worker: refused by the supervisor: %w", &m.Err)
	default:
		return fmt.Errorf("worker: handshake: got %s, want welcome", m.Kind())
	}
}

// mapOwnSlab waits for the worker's own slab, mapped read-write, and says
// so: the supervisor then seals it against every other writable mapping.
func mapOwnSlab(conn *ipc.Conn, w *protocol.Welcome, sl *slabs) error {
	if sl == nil {
		if w.Slab != 0 {
			return fmt.Errorf("worker: the supervisor gives slab %d but no packet socket (%s)", w.Slab, EnvHeavyFD)
		}
		return nil
	}
	sl.own, sl.inlineMax = w.Slab, int(min(w.InlineMax, 1<<30))
	if w.Slab == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := sl.region(ctx, w.Slab)
	if err != nil {
		return err
	}
	if !r.Writable() {
		return fmt.Errorf("worker: slab %d arrived read-only", w.Slab)
	}
	if err := conn.Send(&protocol.Mapped{Slab: w.Slab}); err != nil {
		return fmt.Errorf("worker: handshake: %w", err)
	}
	return nil
}

// alloc asks the supervisor for a block of this worker's slab.
func (s *server) alloc(ctx context.Context, dispatch uint64, size int64) (*protocol.Grant, error) {
	ch := make(chan *protocol.Grant, 1)
	s.mu.Lock()
	s.nextAlloc++
	id := s.nextAlloc
	s.grants[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.grants, id)
		s.mu.Unlock()
	}()
	if err := s.conn.Send(&protocol.Alloc{ID: id, Dispatch: dispatch, Size: size}); err != nil {
		return nil, fmt.Errorf("worker: alloc: %w", err)
	}
	select {
	case g := <-ch:
		if g.Err != nil {
			return nil, g.Err
		}
		return g, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// server runs dispatches for one connection.
type server struct {
	conn      *ipc.Conn
	reg       map[string]Def
	wg        sync.WaitGroup
	mu        sync.Mutex
	running   map[uint64]canceler
	grants    map[uint64]chan *protocol.Grant // Alloc requests waiting, by id
	nextAlloc uint64
	heavy     *tensors   // nil without a packet socket
	rings     *rings     // nil without a ring pair
	done      chan error // the readers' end: nil for EOF; see fail
	gos       *gopool.Pool
	wheel     *deadline.Wheel // the dispatches' deadlines
	// The next reader of the socket and of the request ring, for a
	// reader that hands the reading on (s.wg counts it already).
	nextReader, nextRingReader func()
}

// canceler ends a dispatch's context early: a Wheel's context, or
// cancelFunc for one without a deadline.
type canceler interface{ Cancel() }

// cancelFunc is context.WithCancel's function as a canceler.
type cancelFunc context.CancelFunc

// Cancel calls f.
func (f cancelFunc) Cancel() { f() }

// dispatchGoroutines is how many goroutines a worker keeps idle for the
// next dispatch: a dispatch hands the reading to one of them, whose stack
// has grown already, and runs on the reader's own.
const dispatchGoroutines = 64

// read reads frames until the connection ends. On a Dispatch it passes
// the reading on to another goroutine (a kept one, s.gos) and runs the
// process itself: the
// process starts at once on this thread, and with one dispatch in flight
// no thread ever waits for another (see docs/PROTOCOL.md).
func (s *server) read(ctx context.Context) {
	if err := s.readUntilDispatch(ctx); err != nil {
		s.fail(err)
	}
}

func (s *server) readUntilDispatch(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	for {
		m, err := s.conn.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				s.fail(nil) // the supervisor is gone or we were told to stop
				return nil
			}
			return fmt.Errorf("worker: read from supervisor: %w", err)
		}
		switch m := m.(type) {
		case *protocol.Dispatch:
			// Registered before another goroutine reads: a Cancel right
			// behind the Dispatch finds it.
			dctx, cancel := s.begin(ctx, m)
			s.wg.Add(1)
			s.gos.Go(s.nextReader)
			s.run(dctx, cancel, m)
			return nil
		case *protocol.Cancel:
			s.mu.Lock()
			s.cancelLocked(m)
			s.mu.Unlock()
		case *protocol.Grant:
			s.mu.Lock()
			if ch := s.grants[m.ID]; ch != nil {
				ch <- m
				delete(s.grants, m.ID)
			}
			s.mu.Unlock()
		case *protocol.Ping:
			if err := s.conn.Send((*protocol.Pong)(m)); err != nil {
				return fmt.Errorf("worker: pong: %w", err)
			}
		default:
			log.Warn().Stringer("kind", m.Kind()).Msg("ignoring an unexpected message")
		}
	}
}

// begin returns the context of dispatch dp, registered under its id so
// that a Cancel cancels it. The caller must Cancel it once dp is over.
func (s *server) begin(ctx context.Context, dp *protocol.Dispatch) (context.Context, canceler) {
	var cancel canceler
	if dp.Deadline != 0 {
		dc := s.wheel.WithDeadline(ctx, time.Unix(0, dp.Deadline))
		ctx, cancel = dc, dc
	} else {
		var f context.CancelFunc
		ctx, f = context.WithCancel(ctx)
		cancel = cancelFunc(f)
	}
	s.mu.Lock()
	s.running[dp.ID] = cancel
	s.mu.Unlock()
	return ctx, cancel
}

// run runs one dispatch begun with begin and sends its result.
func (s *server) run(ctx context.Context, cancel canceler, dp *protocol.Dispatch) {
	d, ok := s.reg[dp.Process]
	var res *protocol.Result
	if ok {
		res = d.run1(ctx, dp, s.heavy)
	} else {
		res = &protocol.Result{ID: dp.ID, Err: protocol.Errorf(protocol.CodeUnknownProcess, "this worker has no process %q", dp.Process)}
	}
	s.mu.Lock()
	delete(s.running, dp.ID)
	others := len(s.running) > 0
	s.mu.Unlock()
	cancel.Cancel()
	if !others && s.rings != nil {
		defer s.rings.idle() // once the reply is out
	}
	if s.rings != nil && s.replyRing(res, others) {
		return // others: results of dispatches still running may share its commit
	}
	// Defer: results of a pipelined batch share one write (ipc.Conn.Defer).
	if err := s.conn.Defer(res); errors.Is(err, protocol.ErrFrameTooLarge) {
		// The delta or result does not fit a frame: fail the call instead
		// of leaving the supervisor waiting for an answer.
		s.conn.Send(&protocol.Result{ID: dp.ID, Err: protocol.Errorf(protocol.CodeProcessFailed, "process %q: %v", dp.Process, err)})
	} // any other error means the supervisor is gone; the reader sees it
}
