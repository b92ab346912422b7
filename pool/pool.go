package pool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/internal/cpulimit"
	"github.com/theus-run/theus/protocol"
)

// Config describes a pool. Command is required; the rest have defaults.
type Config struct {
	Command []string // the worker binary and its arguments
	// Pin, when set, is the hex SHA-256 Command[0] must have; see Plugin.
	Pin     string
	Env     []string // added to the supervisor's environment
	Workers int      // default 1

	MaxFrame         int           // default protocol.DefaultMaxFrame
	StartTimeout     time.Duration // spawn to handshake; default 10s
	Heartbeat        time.Duration // ping interval; default 1s
	HeartbeatTimeout time.Duration // silence that marks a worker hung; default 5s
	KillGrace        time.Duration // after a deadline or SIGTERM, before SIGKILL; default 500ms
	// MaxInFlight bounds the dispatches one worker runs at once; more
	// wait in Dispatch for a place. Default 1024.
	MaxInFlight int

	// Restart intensity: more than MaxRestarts restarts of one slot within
	// RestartWindow make the slot wait, doubling from RestartBackoff up to
	// MaxRestartBackoff, before the next start. Defaults 5, 10s, 100ms, 5s.
	MaxRestarts       int
	RestartWindow     time.Duration
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration

	// Orphans, when set, is the process's subreaper (AdoptOrphans): the
	// pool's workers are known to it, and their orphaned descendants are
	// killed (see Orphans). Nil leaves a worker's descendants that left its
	// process group to init.
	Orphans *Orphans

	// Heavy, when set, is the HEAVY zone: each worker gets a slab of it
	// and every other slab read-only. Zones are shared between pools.
	Heavy *heavy.Zone

	// Transport is how Dispatches and Results travel: TransportRing in a
	// shared-memory ring pair for each worker that maps it, else over its
	// socket; TransportSocket always over the socket. "" is
	// DefaultTransport.
	Transport string

	// WorkerPoll is how long a worker with nothing to run polls its
	// request ring before it parks, advised while at most PollBusy
	// dispatches are in flight in the pool: the next dispatch then finds
	// the worker awake, with no wake-up to pay on either side (see
	// docs/BENCHMARKS.md, "Workers that poll"). Under more load the
	// workers park at once, leaving the CPUs to the work. Ring transport
	// only; a worker polls at most 1 ms whatever it is told. Default
	// DefaultWorkerPoll; negative: never.
	WorkerPoll time.Duration
	// PollBusy is the most dispatches in flight at which WorkerPoll is
	// advised, in this pool (each plugin's pool counts its own); default
	// DefaultPollBusy per GOMAXPROCS, or, under a CPU limit (a
	// container's quota) that GOMAXPROCS overstates,
	// DefaultPollBusyLimited per CPU of the limit, rounded up.
	PollBusy int

	Log zerolog.Logger
}

// DefaultWorkerPoll is what Config.WorkerPoll 0 means.
const DefaultWorkerPoll = 100 * time.Microsecond

// DefaultPollBusy is Config.PollBusy's default per GOMAXPROCS. A worker
// polls only while none of its processes runs and yields the CPU as it
// polls, so on 2 cores even an ungated poll took nothing from the work
// at 256 in flight, while a gate at a quarter of GOMAXPROCS (the first
// default) kept 8 clients with one call each from it: counter-spread
// 8×1 did 37–45k req/s gated there and 44–64k at 8 or more (see
// docs/BENCHMARKS.md, "The poll's gate"). Measured on 2 cores only.
const DefaultPollBusy = 8

// DefaultPollBusyLimited is Config.PollBusy's default per CPU of a CPU
// limit (the process's cgroup quota) that GOMAXPROCS overstates: the Go
// runtime sets GOMAXPROCS from the limit but never below 2, and a
// GOMAXPROCS set by hand may be above it. The supervisor and its
// workers spend one quota, and a polling worker spends it even while a
// CPU is idle. With a quota of one CPU on 2 cores (GOMAXPROCS 2, so a
// gate of 16), counter-spread 8×1 did 21–25k req/s polling, 30–31k
// without, and 29–34k at this default, which still polls for a lone
// closed loop (noop 1×1: 9–10k without polling, 11–13k at this
// default); docs/BENCHMARKS.md, "Polling under a CPU quota". Measured
// at quotas of 1 and 1.5 CPUs on 2 cores only.
const DefaultPollBusyLimited = 1

// MaxWorkerPoll is the longest poll a worker of this SDK follows.
const MaxWorkerPoll = time.Millisecond

// CheckWorkerPoll checks a --worker-poll flag's value: 0 (never) or a
// whole number of microseconds up to MaxWorkerPoll (the advice is in
// microseconds, and workers poll no longer).
func CheckWorkerPoll(d time.Duration) error {
	if d < 0 || d > MaxWorkerPoll || d%time.Microsecond != 0 {
		return fmt.Errorf("--worker-poll %s: want 0 (never) or whole microseconds up to %s", d, MaxWorkerPoll)
	}
	return nil
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = protocol.DefaultMaxFrame
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.StartTimeout, 10*time.Second)
	def(&c.Heartbeat, time.Second)
	def(&c.HeartbeatTimeout, 5*time.Second)
	def(&c.KillGrace, 500*time.Millisecond)
	def(&c.RestartWindow, 10*time.Second)
	def(&c.RestartBackoff, 100*time.Millisecond)
	def(&c.MaxRestartBackoff, 5*time.Second)
	if c.MaxRestarts <= 0 {
		c.MaxRestarts = 5
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.WorkerPoll == 0 {
		c.WorkerPoll = DefaultWorkerPoll
	}
	if c.PollBusy <= 0 {
		limit, limited, err := readCPULimit()
		if err != nil {
			c.Log.Warn().Err(err).Msg("reading the CPU limit: the workers' poll is gated as without one")
		}
		c.PollBusy = defaultPollBusy(runtime.GOMAXPROCS(0), limit, limited && err == nil)
	}
}

// readCPULimit reads the process's CPU limit. A variable for the tests.
var readCPULimit = cpulimit.Read

// defaultPollBusy is Config.PollBusy's default for a process with procs
// GOMAXPROCS, under a CPU limit of limit CPUs when limited: 8 per
// GOMAXPROCS, unless GOMAXPROCS overstates the limit (a quota of one CPU
// or less, which the runtime rounds up to 2, or a GOMAXPROCS set above
// the quota); then 1 per CPU of the limit, rounded up. So the gate
// jumps from 1 to 16 between a quota of 1 CPU and one a little above,
// on 2 cores or more; quotas between 1 and 1.5 CPUs are not measured.
func defaultPollBusy(procs int, limit float64, limited bool) int {
	if cpus := int(math.Ceil(limit)); limited && cpus < procs {
		return DefaultPollBusyLimited * max(cpus, 1)
	}
	return DefaultPollBusy * procs
}

// Errors of Dispatch.
var (
	// ErrWorkerCrashed: the worker died with the dispatch in flight. The
	// dispatch may have run but its result was lost: nothing it wrote was
	// committed, so running it again is safe.
	ErrWorkerCrashed = errors.New("pool: worker crashed")
	// ErrClosed: the pool is closing.
	ErrClosed = errors.New("pool: closed")
)

// Pool runs the workers of one plugin binary.
type Pool struct {
	cfg     Config
	spawner *spawner
	ctx     context.Context // ends when Close begins
	cancel  context.CancelFunc
	hard    chan struct{}  // closed when Close's deadline passes
	wg      sync.WaitGroup // slot and heartbeat goroutines
	closing sync.Once
	bin     *os.File     // the pinned binary's sealed copy; nil when unpinned
	waiting atomic.Int64 // Dispatch calls waiting in pick
	// lateWakes counts the wake-ups the pool paid late (a heartbeat, a
	// dispatch's deadline) for dispatches published without one (payLate).
	lateWakes atomic.Uint64

	mu       sync.Mutex
	slots    []*slot
	registry []protocol.ProcessInfo // from the first handshake
	notify   chan struct{}          // closed and replaced on every change
}

// slot is one place in the pool: the worker that fills it now and its
// history.
type slot struct {
	index    int
	cur      *proc // nil while starting or backing off
	state    string
	restarts uint64
	starts   []time.Time // recent starts, for the intensity limit
	done     uint64      // dispatches finished by earlier workers of the slot
}

// Start launches cfg.Workers workers and returns once every one has
// completed its handshake, or with the first one's error (a binary that
// is not a theus worker fails here, with its stderr in the error).
func Start(cfg Config) (*Pool, error) {
	if len(cfg.Command) == 0 {
		return nil, errors.New("pool: no worker command")
	}
	switch cfg.Transport {
	case "", TransportRing, TransportSocket:
	default:
		return nil, fmt.Errorf("pool: transport %q: want %q or %q", cfg.Transport, TransportRing, TransportSocket)
	}
	cfg.defaults()
	var bin *os.File
	if cfg.Pin != "" {
		var err error
		if bin, err = pinBinary(cfg.Command[0], cfg.Pin); err != nil {
			return nil, err
		}
	}
	p := &Pool{cfg: cfg, bin: bin, spawner: newSpawner(cfg.Orphans), notify: make(chan struct{}), hard: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	first := make([]*proc, cfg.Workers)
	errs := make([]error, cfg.Workers)
	var wg sync.WaitGroup
	for i := range cfg.Workers {
		p.slots = append(p.slots, &slot{index: i, state: "starting"})
		wg.Go(func() { first[i], errs[i] = p.spawn(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, pr := range first {
			if pr != nil {
				pr.kill(errStopping)
				<-pr.done
			}
		}
		p.cancel()
		p.spawner.stop()
		p.closeBinary()
		return nil, err
	}
	for i, pr := range first {
		p.slots[i].cur, p.slots[i].state = pr, "ready"
		p.wg.Go(func() { p.supervise(p.slots[i], pr) })
	}
	p.wg.Go(p.heartbeat)
	return p, nil
}

// Processes returns the processes the workers registered.
func (p *Pool) Processes() []protocol.ProcessInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.registry)
}

// checkRegistry accepts a worker's process list if it is well formed and
// the pool's.
func (p *Pool) checkRegistry(ps []protocol.ProcessInfo) error {
	seen := make(map[string]bool, len(ps))
	for _, pi := range ps {
		if seen[pi.Name] {
			return fmt.Errorf("worker registers process %q twice", pi.Name)
		}
		seen[pi.Name] = true
		switch pi.Semantic {
		case "", "pure", "effect":
		default:
			return fmt.Errorf("worker registers process %q with semantic %q; want \"pure\" or \"effect\"", pi.Name, pi.Semantic)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.registry == nil {
		if len(ps) == 0 {
			return errors.New("worker registers no processes")
		}
		p.registry = byName(ps)
		return nil
	}
	if !slices.EqualFunc(p.registry, byName(ps), sameInfo) {
		return errors.New("worker registers other processes than the rest of its pool (was the binary replaced?)")
	}
	return nil
}

// byName returns a copy of ps sorted by name: the same processes in
// another order are the same registry.
func byName(ps []protocol.ProcessInfo) []protocol.ProcessInfo {
	return slices.SortedFunc(slices.Values(ps), func(a, b protocol.ProcessInfo) int { return strings.Compare(a.Name, b.Name) })
}

// sameInfo compares two processes; a contract's paths are sets, in any
// order.
func sameInfo(a, b protocol.ProcessInfo) bool {
	return a.Name == b.Name && a.Semantic == b.Semantic && sameSet(a.Inputs, b.Inputs) && sameSet(a.Outputs, b.Outputs)
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// changed wakes Dispatch calls waiting for a worker.
func (p *Pool) changed() {
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
}

// pick returns the ready worker with the fewest dispatches in flight
// and reserves a place in it (the caller calls release), waiting while
// every worker is starting or has MaxInFlight dispatches.
func (p *Pool) pick(ctx context.Context) (*proc, error) {
	for {
		p.mu.Lock()
		best := p.pickLocked()
		wait := p.notify
		p.mu.Unlock()
		if best != nil {
			return best, nil
		}
		p.waiting.Add(1)
		select {
		case <-wait:
		case <-p.ctx.Done():
			p.waiting.Add(-1)
			return nil, ErrClosed
		case <-ctx.Done():
			p.waiting.Add(-1)
			return nil, ctx.Err()
		}
		p.waiting.Add(-1)
	}
}

// pickLocked is pick's choice now, nil for none (p.mu is held). It
// leaves on the choice the poll to advise its worker (pollAdvice), from
// the dispatches in flight on every worker, this one included.
func (p *Pool) pickLocked() *proc {
	var best *proc
	var busy int64
	for _, s := range p.slots {
		pr := s.cur
		if pr == nil || pr.isDead() {
			continue
		}
		n := pr.inflight.Load()
		busy += n
		if n >= int64(p.cfg.MaxInFlight) {
			continue
		}
		if best == nil || n < best.inflight.Load() {
			best = pr
		}
	}
	if best != nil {
		best.inflight.Add(1)
		best.poll.Store(int64(p.pollAdvice(busy + 1)))
	}
	return best
}

// pollAdvice is the poll to advise a worker sent a dispatch while busy
// are in flight (Config.WorkerPoll): none above PollBusy.
func (p *Pool) pollAdvice(busy int64) time.Duration {
	if busy > int64(p.cfg.PollBusy) {
		return 0
	}
	return max(p.cfg.WorkerPoll, 0)
}

// Waiting returns the dispatches waiting for a worker with room (every
// live worker has MaxInFlight): the dispatch queue's depth.
func (p *Pool) Waiting() int64 { return p.waiting.Load() }

func (pr *proc) isDead() bool {
	select {
	case <-pr.dead:
		return true
	default:
		return false
	}
}

// Dispatch runs dp on the least-loaded worker and returns its Result (a
// process error is in Result.Err, not in the error) and the lease on the
// HEAVY blocks the dispatch allocated (nil when the zone is off): the
// caller owns the lease from then on, claims from it what the result
// names and must Close it. On error there is no lease to close. Errors:
// ErrWorkerCrashed, ErrClosed, or ctx's error once ctx ends (the worker is
// told to cancel, and killed if the process does not stop within
// KillGrace). Dispatch sets dp's ID itself.
func (p *Pool) Dispatch(ctx context.Context, dp *protocol.Dispatch) (*protocol.Result, *heavy.Lease, error) {
	pr, err := p.pick(ctx)
	if err != nil {
		return nil, nil, err
	}
	return pr.call(ctx, dp)
}

// WorkerStatus describes every slot.
func (p *Pool) WorkerStatus() []protocol.WorkerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]protocol.WorkerStatus, 0, len(p.slots))
	for _, s := range p.slots {
		ws := protocol.WorkerStatus{Slot: int64(s.index), State: s.state, Restarts: s.restarts, Processed: s.done}
		if s.cur != nil {
			ws.PID = int64(s.cur.pid)
			ws.InFlight = s.cur.inflight.Load()
			ws.Processed += s.cur.processed.Load()
		}
		out = append(out, ws)
	}
	return out
}

// LateWakes is how many times the pool found a worker's request ring
// owing a wake-up for a whole heartbeat, or still owing it a grace after
// a dispatch's deadline, and woke the worker: each is a caller of
// TryDispatchFunc that did not call its Wakes.Wake before it blocked or
// went on (a bug in that caller), mended late.
func (p *Pool) LateWakes() uint64 { return p.lateWakes.Load() }

// PIDs returns the process ids of the live workers.
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, s := range p.slots {
		if s.cur != nil && !s.cur.isDead() {
			out = append(out, s.cur.pid)
		}
	}
	return out
}

// Close stops the pool: no new worker starts, every worker's socket is
// closed (a worker exits on EOF), and a worker still running at ctx's end
// is killed. Dispatches in flight fail with ErrWorkerCrashed or
// ErrClosed; drain them before calling Close. It returns when every worker
// is reaped. Close may be called more than once: later calls wait for the
// first to finish and do nothing.
func (p *Pool) Close(ctx context.Context) error {
	p.closing.Do(func() {
		p.cancel() // each slot closes its worker's socket and waits for it to exit
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			close(p.hard) // kill what is still running
			<-done
		}
		p.spawner.stop()
		p.closeBinary()
	})
	return nil
}

// closeBinary closes the pinned copy of the binary, if any.
func (p *Pool) closeBinary() {
	if p.bin != nil {
		p.bin.Close()
	}
}
