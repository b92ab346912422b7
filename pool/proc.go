package pool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/internal/golabel"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// proc is one worker process, from spawn to reaping.
type proc struct {
	pool   *Pool
	slot   int
	cmd    *exec.Cmd
	conn   *ipc.Conn
	pid    int
	log    zerolog.Logger
	stderr *lineLog
	logs   *logBudget // its output's log budget
	procs  []protocol.ProcessInfo
	slab   *heavy.Slab   // its HEAVY slab; nil for none
	reader *heavy.Reader // its packet socket, in the zone
	packet *os.File      // our end of it
	rings  *rings        // its ring pair; nil: the socket carries everything
	// mappedRing: its Hello says it mapped the ring pair it was given.
	mappedRing bool

	inflight  atomic.Int64
	poll      atomic.Int64 // the poll to advise with the next dispatch, set by pickLocked (ns)
	processed atomic.Uint64
	lastSeen  atomic.Int64 // Unix nanoseconds of the last frame from the worker
	// owedSeen is the request record its ring owed a wake-up for
	// (ring.Shared.Owed) when the heartbeat first saw it, at owedSince;
	// the heartbeat's alone.
	owedSeen  uint64
	owedSince time.Time

	mu     sync.Mutex
	nextID uint64
	calls  map[uint64]*call // dispatches in flight; nil once the worker is dead
	exited bool             // the process is a zombie or reaped: never signal it again
	cause  error            // why it died; set once
	dead   chan struct{}
	reaped chan struct{} // closed by wait, once the process is reaped
	// done is closed when both goroutines of the worker (wait and read)
	// have returned; whoever holds the proc (the pool's slot) waits for it.
	done chan struct{}
}

// errDied is the cause when a worker's connection or process ended.
var errDied = errors.New("worker died")

// spawn starts a worker and runs the handshake. On error the process is
// gone (killed and reaped).
func (p *Pool) spawn(slot int) (*proc, error) {
	local, remote, err := ipc.Pair()
	if err != nil {
		return nil, err
	}
	defer remote.Close()
	files := []*os.File{remote}
	var packet *os.File
	if p.cfg.Heavy != nil {
		var premote *os.File
		if packet, premote, err = ipc.PacketPair(); err != nil {
			local.Close()
			return nil, err
		}
		defer premote.Close()
		files = append(files, premote)
	}
	cmd := exec.Command(p.cfg.Command[0], p.cfg.Command[1:]...)
	cmd.Env = append(os.Environ(),
		"THEUS_WORKER_FD=3",
		"THEUS_SUPERVISOR_PID="+strconv.Itoa(os.Getpid()),
		"THEUS_MAX_FRAME="+strconv.Itoa(p.cfg.MaxFrame),
		"THEUS_WORKER_SLOT="+strconv.Itoa(slot))
	if packet != nil {
		cmd.Env = append(cmd.Env, "THEUS_HEAVY_FD=4")
	}
	pair, bells, err := p.newRingPair()
	if err != nil {
		local.Close()
		if packet != nil {
			packet.Close()
		}
		return nil, err
	}
	if p.bin != nil {
		// Execute the checked copy, inherited at the next fd (the path
		// is resolved in the child, after its fds are arranged); ps
		// still shows the plugin's path.
		files = append(files, p.bin)
		cmd.Path = "/proc/self/fd/" + strconv.Itoa(2+len(files))
	}
	if pair != nil {
		// The memfd, then the doorbells of the request and reply rings.
		files = append(files, pair.File(), bells[0], bells[1])
		cmd.Env = append(cmd.Env, fmt.Sprintf("THEUS_RING_FD=%d,%d,%d", len(files), len(files)+1, len(files)+2))
		defer bells[0].Close() // the worker has its copies once it started
		defer bells[1].Close()
	}
	cmd.Env = append(cmd.Env, p.cfg.Env...)
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.WaitDelay = time.Second
	log := p.cfg.Log.With().Int("slot", slot).Logger()
	pr := &proc{pool: p, slot: slot, cmd: cmd, packet: packet, calls: map[uint64]*call{}, dead: make(chan struct{}), reaped: make(chan struct{}), done: make(chan struct{})}
	pr.logs = newLogBudget()
	pr.stderr = &lineLog{log: log, stream: "stderr", budget: pr.logs}
	stdout := &lineLog{log: log, stream: "stdout", budget: pr.logs}
	cmd.Stderr, cmd.Stdout = pr.stderr, stdout
	if err := p.spawner.start(cmd); err != nil {
		local.Close()
		if packet != nil {
			packet.Close()
		}
		closePair(pair)
		return nil, fmt.Errorf("pool: start %s: %w", p.cfg.Command[0], err)
	}
	pr.pid = cmd.Process.Pid
	pr.log = log.With().Int("pid", pr.pid).Logger()
	pr.stderr.setLog(pr.log)
	stdout.setLog(pr.log)
	pr.conn, err = ipc.FileConn(local, ipc.Options{MaxFrame: p.cfg.MaxFrame})
	local.Close()
	if err != nil {
		closePair(pair)
		pr.kill(err)
		go pr.wait()
		<-pr.reaped
		return nil, err
	}
	go pr.wait()
	if err := pr.handshake(); err != nil {
		closePair(pair)
		pr.kill(err)
		<-pr.reaped
		if tail := pr.stderr.last(); len(tail) > 0 {
			err = fmt.Errorf("%w (worker stderr: %s)", err, strings.Join(tail, " | "))
		}
		return nil, err
	}
	pr.lastSeen.Store(time.Now().UnixNano())
	if pair != nil && !pr.mappedRing {
		closePair(pair) // the worker did not map it: the socket carries everything
		pair = nil
	}
	if pair != nil {
		pr.useRings(pair)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		pr.read()
	}()
	go func() {
		<-pr.reaped
		<-readDone // the reader ends once stop has closed the socket
		if pr.rings != nil {
			pr.rings.close() // readRing ends once stop has canceled it
		}
		close(pr.done)
	}()
	return pr, nil
}

func (pr *proc) handshake() error {
	pr.conn.SetReadDeadline(time.Now().Add(pr.pool.cfg.StartTimeout))
	m, err := pr.conn.Recv()
	if err != nil {
		return fmt.Errorf("pool: worker %d handshake: %w", pr.pid, err)
	}
	pr.conn.SetReadDeadline(time.Time{})
	h, ok := m.(*protocol.Hello)
	if !ok {
		return fmt.Errorf("pool: worker %d handshake: got %s, want hello", pr.pid, m.Kind())
	}
	if h.Magic != protocol.Magic || h.Protocol != protocol.Version {
		err := protocol.Errorf(protocol.CodeProtocol, "worker speaks %q version %d; this supervisor speaks %q version %d", h.Magic, h.Protocol, protocol.Magic, protocol.Version)
		pr.conn.Send(&protocol.Refuse{Err: *err})
		return fmt.Errorf("pool: worker %d: %w", pr.pid, err)
	}
	if err := pr.pool.checkRegistry(h.Processes); err != nil {
		pr.conn.Send(&protocol.Refuse{Err: protocol.Error{Code: protocol.CodeProtocol, Message: err.Error()}})
		return fmt.Errorf("pool: worker %d: %w", pr.pid, err)
	}
	pr.procs = h.Processes
	pr.mappedRing = h.Ring
	w := &protocol.Welcome{Protocol: protocol.Version, Slot: int64(pr.slot), HeartbeatMS: pr.pool.cfg.Heartbeat.Milliseconds()}
	if z := pr.pool.cfg.Heavy; z != nil {
		if err := pr.attachHeavy(z); err != nil {
			return err
		}
		w.Slab, w.InlineMax = pr.slab.ID(), int64(z.InlineMax())
	}
	if err := pr.conn.Send(w); err != nil {
		return err
	}
	if pr.slab == nil {
		return nil
	}
	// The worker maps its slab read-write, then says so; only then is the
	// slab sealed against every other writable mapping and shown to the
	// other workers.
	pr.conn.SetReadDeadline(time.Now().Add(pr.pool.cfg.StartTimeout))
	m, err = pr.conn.Recv()
	if err != nil {
		return fmt.Errorf("pool: worker %d handshake: %w", pr.pid, err)
	}
	pr.conn.SetReadDeadline(time.Time{})
	if mp, ok := m.(*protocol.Mapped); !ok || mp.Slab != pr.slab.ID() {
		return fmt.Errorf("pool: worker %d handshake: got %s, want mapped slab %d", pr.pid, m.Kind(), pr.slab.ID())
	}
	return pr.pool.cfg.Heavy.Seal(pr.slab)
}

// attachHeavy gives the worker a slab of the zone (or none: its tensor
// outputs then fail with arena_full) and the read-only descriptors of the
// other slabs.
func (pr *proc) attachHeavy(z *heavy.Zone) error {
	slab, err := z.NewSlab()
	if err != nil && !errors.Is(err, heavy.ErrNoSlab) {
		return fmt.Errorf("pool: worker %d: %w", pr.pid, err)
	}
	if err != nil && z.Stats().Size > 0 {
		pr.log.Warn().Err(err).Msg("worker starts without a HEAVY slab")
	}
	pr.slab = slab
	pr.reader, err = z.Attach(pr.packet, slab) // its failure is watched by supervise
	return err
}

// read delivers the worker's frames until the connection ends, then
// declares the worker dead.
func (pr *proc) read() {
	golabel.Set(golabel.WorkerSocket, pr.pid)
	for {
		m, err := pr.conn.Recv()
		if err != nil {
			pr.kill(fmt.Errorf("%w: read: %w", errDied, err))
			return
		}
		pr.lastSeen.Store(time.Now().UnixNano())
		switch m := m.(type) {
		case *protocol.Result:
			var after After
			ok := pr.deliver(m, &after)
			after.run()
			if !ok {
				return
			}
		case *protocol.Pong:
		case *protocol.Alloc:
			if err := pr.conn.Send(pr.alloc(m)); err != nil {
				pr.kill(fmt.Errorf("%w: send: %w", errDied, err))
				return
			}
		default:
			pr.kill(fmt.Errorf("%w: unexpected %s from worker", errDied, m.Kind()))
			return
		}
	}
}

// deliver hands a Result, from the socket or the reply ring, to its
// call. It reports false when it killed the worker instead.
func (pr *proc) deliver(m *protocol.Result, after *After) bool {
	pr.mu.Lock()
	c := pr.calls[m.ID]
	delete(pr.calls, m.ID)
	pr.mu.Unlock()
	if c == nil {
		// Not in flight: never sent, answered already, or given up
		// (then the worker is being stopped anyway). The worker
		// and the supervisor disagree on the state of the
		// connection, so it ends (docs/PROTOCOL.md).
		pr.kill(fmt.Errorf("%w: result for dispatch %d, which is not in flight", errDied, m.ID))
		return false
	}
	if c.done != nil {
		pr.complete(c, m, after)
		return true
	}
	c.result <- m // no yield: the next results of a batch are delivered first
	return true
}

// wait reaps the worker. It first waits without reaping, so the process
// group can be killed while its id cannot have been reused.
func (pr *proc) wait() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pr.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	pr.mu.Lock()
	unix.Kill(-pr.pid, unix.SIGKILL) // grandchildren; the leader is a zombie, so the group id is still ours
	pr.exited = true
	pr.mu.Unlock()
	err := pr.cmd.Wait() // after it, no more output is forwarded
	pr.pool.cfg.Orphans.reaped(pr.pid)
	pr.logs.report(pr.log)
	pr.kill(fmt.Errorf("%w: exited: %v", errDied, err))
	close(pr.reaped)
}

// kill declares the worker dead with cause, fails its calls, and kills its
// process group if it has not exited. Only the first of kill, terminate
// and stop decides; later calls change nothing (use signal to escalate).
func (pr *proc) kill(cause error) { pr.stop(cause, unix.SIGKILL) }

// hung is the cause that kills a worker whose dispatch id of process
// is still running grace after its deadline. With rings it adds what the
// request ring shows: published bytes the worker has not read, and
// whether its reader parks (a parked reader with a backlog was never
// woken for it; when a wake-up was owed, the deadline's check in
// cancelFunc and the heartbeat wake it instead of calling it hung).
func (pr *proc) hung(id uint64, process string, grace time.Duration) error {
	err := fmt.Errorf("%w: dispatch %d of %q still running %s after its deadline", errHung, id, process, grace)
	out := pr.requestRing()
	if out == nil {
		return err
	}
	unread, parked := out.Backlog()
	switch {
	case unread > 0 && parked:
		return fmt.Errorf("%w (its request ring: %d bytes unread, its reader parked)", err, unread)
	case unread > 0:
		return fmt.Errorf("%w (its request ring: %d bytes unread)", err, unread)
	}
	return err
}

// terminate is kill with SIGTERM first and SIGKILL after grace.
func (pr *proc) terminate(cause error, grace time.Duration) {
	pr.stop(cause, unix.SIGTERM)
	go func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-pr.reaped:
		case <-t.C:
			pr.signal(unix.SIGKILL)
		}
	}()
}

func (pr *proc) signal(sig unix.Signal) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if !pr.exited {
		unix.Kill(-pr.pid, sig)
	}
}

func (pr *proc) stop(cause error, sig unix.Signal) {
	pr.mu.Lock()
	first := pr.cause == nil
	if first {
		pr.cause = cause
		close(pr.dead)
		for _, c := range pr.calls {
			if c.done != nil {
				go pr.complete(c, nil, nil) // never under pr.mu
				continue
			}
			c.result <- nil // the death, to a call in flight (its buffer is empty: deliver deletes before it sends)
		}
		pr.calls = nil
		if pr.rings != nil {
			pr.rings.stop() // readRing returns; the pair is closed once the worker is reaped
		}
		// Only the first verdict signals: a later one (the reader seeing
		// the socket we closed to stop the worker gracefully) must not
		// turn a clean exit into a SIGKILL. Escalation goes through signal.
		if !pr.exited && sig != 0 {
			unix.Kill(-pr.pid, sig)
		}
	}
	pr.mu.Unlock()
	if first {
		pr.conn.Close()
		if z := pr.pool.cfg.Heavy; z != nil {
			z.Detach(pr.reader)
			pr.packet.Close() // the worker's packet reader sees the end
			z.Retire(pr.slab)
		}
		if !errors.Is(cause, errStopping) {
			pr.log.Warn().Err(cause).Msg("worker down")
		}
		pr.pool.changed()
	}
}

// call is a dispatch in flight: where its result goes, and the lease on
// the blocks it allocates.
type call struct {
	result chan *protocol.Result // buffered: the reader never blocks
	blocks *heavy.Lease          // nil when the zone is off; set and read under proc.mu
	// A DispatchFunc's (async.go): done instead of result, its context,
	// its process (for the error that kills a worker still running it
	// after its deadline), and, under proc.mu, its place in the request
	// ring.
	done    Completion
	ctx     context.Context
	process string
	seq     uint64
	lease   heavy.Lease // blocks' storage for a DispatchFunc's (never recycled)
}

// calls keeps calls for the next dispatch. A call goes back only once its
// result was received: the reader deleted it from proc.calls before it
// sent the result, so nothing refers to it then. A call given up (timeout,
// death, failed send) is left to the garbage collector: a reader that
// found it just before may still send to it.
var calls = sync.Pool{New: func() any { return &call{result: make(chan *protocol.Result, 1)} }}

// recycle hands c back to calls once its result was received.
func recycle(c *call) {
	c.blocks = nil
	calls.Put(c)
}

// call sends dp and waits for its result. On success the caller owns the
// lease on the blocks the dispatch allocated and must close it; on every
// error the lease is closed here. The worker's death gives
// ErrWorkerCrashed; the end of ctx sends a Cancel and waits KillGrace for
// the process to stop before killing the worker.
func (pr *proc) call(ctx context.Context, dp *protocol.Dispatch) (*protocol.Result, *heavy.Lease, error) {
	defer pr.release() // the place pick reserved
	pr.mu.Lock()
	if pr.cause != nil {
		pr.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: pid %d: %v", ErrWorkerCrashed, pr.pid, pr.cause)
	}
	pr.nextID++
	id := pr.nextID
	c := calls.Get().(*call)
	if z := pr.pool.cfg.Heavy; z != nil {
		c.blocks = z.Lease(pr.slab, id)
	}
	pr.calls[id] = c
	pr.mu.Unlock()
	blocks := c.blocks // the call's own: c may serve another dispatch once recycled
	// forget ends the dispatch for the worker: no Alloc is granted for
	// it after, and its blocks are freed (Close refuses later Allocs
	// itself: forgetting first only turns them into clear errors).
	forget := func() {
		pr.mu.Lock()
		delete(pr.calls, id) // a nil map after the worker's death: a no-op
		pr.mu.Unlock()
		blocks.Close()
	}
	d := *dp // on the stack: sendDispatch keeps no pointer to it
	d.ID = id
	// answered returns a result the reader delivered already: an answer
	// that came before a write failure or the worker's death stands. (A
	// nil result is the death itself, sent by stop.)
	answered := func() (*protocol.Result, bool) {
		select {
		case res := <-c.result:
			if res == nil {
				return nil, false
			}
			pr.processed.Add(1)
			return res, true
		default:
			return nil, false
		}
	}
	seq, err := pr.sendDispatch(&d, nil)
	if err != nil {
		if res, ok := answered(); ok {
			return res, blocks, nil
		}
		// A batched write can fail after the batch holding this dispatch
		// went out, so the worker may have allocated for it already.
		forget()
		return nil, nil, pr.sendFailed(dp, err)
	}
	// The worker's death comes as a nil result, not through pr.dead: a
	// channel that every call in flight waited on was one lock for all of
	// them, taken twice per call.
	select {
	case res := <-c.result:
		if res == nil {
			forget()
			return nil, nil, fmt.Errorf("%w: pid %d: %v", ErrWorkerCrashed, pr.pid, pr.cause) // set before the nil was sent
		}
		pr.processed.Add(1)
		recycle(c)
		return res, blocks, nil
	case <-ctx.Done():
	}
	defer forget() // whatever happens now, nobody claims this dispatch's blocks
	// The Cancel names the Dispatch's place in the request ring: a worker
	// that has not read that far keeps it until it has.
	pr.conn.Send(&protocol.Cancel{ID: id, Ring: seq})
	t := time.NewTimer(pr.pool.cfg.KillGrace)
	defer t.Stop()
	select {
	case res := <-c.result:
		if res != nil {
			pr.processed.Add(1)
		}
		return nil, nil, ctx.Err() // too late: the caller has gone (or the worker died)
	case <-pr.dead:
	case <-t.C:
		pr.terminate(pr.hung(id, dp.Process, pr.pool.cfg.KillGrace), pr.pool.cfg.KillGrace)
	}
	return nil, nil, ctx.Err()
}

// sendFailed is the error of a dispatch whose send failed with err (dp
// as the caller gave it). A dispatch too big for a frame leaves the
// worker alone: nothing was sent. Any other failure kills the worker.
func (pr *proc) sendFailed(dp *protocol.Dispatch, err error) error {
	if errors.Is(err, protocol.ErrFrameTooLarge) {
		return protocol.Errorf(protocol.CodeBadRequest, "dispatch of %q: %v (raise --max-frame, or move large values to the HEAVY zone)", dp.Process, err)
	}
	pr.kill(fmt.Errorf("%w: send: %w", errDied, err))
	return fmt.Errorf("%w: pid %d: %v", ErrWorkerCrashed, pr.pid, err)
}

// alloc grants a block of the worker's slab to a dispatch in flight,
// through the dispatch's lease.
func (pr *proc) alloc(a *protocol.Alloc) *protocol.Grant {
	g := &protocol.Grant{ID: a.ID}
	if a.Size <= 0 {
		g.Err = protocol.Errorf(protocol.CodeBadRequest, "alloc of %d bytes for dispatch %d: the size must be positive", a.Size, a.Dispatch)
		return g
	}
	pr.mu.Lock()
	c := pr.calls[a.Dispatch]
	var blocks *heavy.Lease
	if c != nil {
		blocks = c.blocks // under the lock: once c is recycled, c.blocks is another dispatch's
	}
	pr.mu.Unlock()
	if c == nil {
		g.Err = protocol.Errorf(protocol.CodeBadRequest, "alloc for dispatch %d, which is not in flight", a.Dispatch)
		return g
	}
	b, err := blocks.Alloc(a.Size)
	switch {
	case errors.Is(err, heavy.ErrLeaseClosed):
		g.Err = protocol.Errorf(protocol.CodeBadRequest, "alloc for dispatch %d, which is over", a.Dispatch)
		return g
	case err != nil:
		g.Err = protocol.Errorf(protocol.CodeArenaFull, "%v", err)
		return g
	}
	g.Slab, g.Off, g.Len, g.Gen = pr.slab.ID(), b.Off, b.Len, b.Gen
	return g
}

var (
	errHung     = errors.New("worker hung")
	errStopping = errors.New("pool stopping")
)

// release gives back a place reserved by pick, waking Dispatch calls
// that wait for one when the worker was full.
func (pr *proc) release() {
	if pr.inflight.Add(-1) == int64(pr.pool.cfg.MaxInFlight)-1 {
		pr.pool.changed()
	}
}

func sendPing(pr *proc, seq uint64) {
	pr.conn.Send(&protocol.Ping{Seq: seq}) // a failure shows up in read
}
