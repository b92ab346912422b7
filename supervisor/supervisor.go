package supervisor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/heavy"
	"github.com/theus-run/theus/internal/deadline"
	"github.com/theus-run/theus/internal/gopool"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/schema"
	"github.com/theus-run/theus/shm"
	"github.com/theus-run/theus/signal"
	"github.com/theus-run/theus/vip"
)

// Config describes a supervisor. Plugins is required.
type Config struct {
	// Plugins are the worker binaries (command and optional checksum pin,
	// see pool.Plugin); each gets a pool of Workers workers. A process
	// name may appear in one plugin only.
	Plugins []pool.Plugin
	Workers int
	// Socket is the client socket's path; empty for none (in-process use).
	Socket   string
	Mode     cas.Mode
	VIPAfter int // conflicts before a VIP ticket; default cas.DefaultVIPAfter
	MaxFrame int // default protocol.DefaultMaxFrame

	DefaultTimeout time.Duration // an Execute without a timeout; default 30s
	MaxRedispatch  int           // re-dispatches after worker crashes; default 3
	DrainTimeout   time.Duration // on shutdown, for executes in flight; default 10s
	MaxPerClient   int           // executes in flight per client connection; default 1024
	// GoroutinePerExecute runs every client Execute on a goroutine that
	// waits for its worker, as before the continuation path
	// (docs/ARCHITECTURE.md, "An execute's path"); for comparisons.
	GoroutinePerExecute bool

	// MaxClients bounds the client connections served at once (default
	// 1024); past it a connection gets a Refuse with too_many_clients.
	MaxClients int
	// ClientBuffer bounds the bytes held for client frames still being
	// read, all connections together (default 256 MiB, at least
	// MaxFrame); a frame that does not fit waits. FrameTimeout is how long
	// a client frame may take to arrive once its header has (default
	// 10s); a client that stalls inside one is disconnected.
	ClientBuffer int64
	FrameTimeout time.Duration
	// WriteTimeout bounds one write of replies to a client (default
	// ipc.DefaultWriteTimeout, 10s): a client that stops reading while
	// its socket buffer is full is disconnected once it passes.
	WriteTimeout time.Duration

	// HeavySize is the HEAVY zone's budget in bytes, split into one slab
	// per worker (the largest tensor a worker can write is
	// HeavySize/(workers of every plugin)); 0 turns the arena off, and
	// only tensors up to HeavyInline travel. HeavyInline defaults to
	// heavy.DefaultInlineMax.
	HeavySize   int64
	HeavyInline int

	// StateDir holds the DATA zone's file; "" keeps state in memory only.
	// Durability says when a commit is on disk there (durable.Sync, the
	// zero value, or Async; None is the same as no StateDir).
	StateDir   string
	Durability durable.Mode
	// JournalFault is durable.Config.Fault: a seam for tests that fail
	// the disk at chosen points.
	JournalFault func(point string) error
	// Restore, when set, is a backup (theusctl snapshot save) to start
	// from instead of the state in StateDir: it is checked in full first
	// (a damaged one stops the start, durable.ErrCorrupt), then installed
	// in StateDir, whose old state file is kept beside it, renamed.
	Restore string
	// JournalMaxBatch is durable.Config.MaxBatch: 1 turns group commit
	// off (the benchmarks' one-fsync-per-commit baseline).
	JournalMaxBatch int

	// Flux is the directory of workflow and machine files (*.yaml,
	// *.yml) to load; "" for none. An invalid file stops the start with a
	// *flux.LoadError.
	Flux string

	// Schema, when set, is the schema gate: every value a process's
	// commit sets or appends must satisfy the schemas whose patterns
	// match its path, else the execute fails with schema_violation and
	// commits nothing. nil checks nothing.
	Schema *schema.Gate
	// Audit is an audit recipe (YAML, docs/GOVERNANCE.md) to check calls
	// with; "" for none. A recipe that does not load stops the start with
	// a *audit.LoadError.
	Audit string

	// Etcd, when set, keeps the DATA zone in an etcd cluster shared with
	// other supervisors instead of in this process (see EtcdConfig; then
	// StateDir, Restore, Flux and Audit must be unset). HEAVY arena
	// tensors stay in this process: other supervisors refuse to read them
	// (remote_tensor).
	Etcd *EtcdConfig

	// CommitLog is how many commits the commit log keeps (theusctl log,
	// /api/log); default DefaultCommitLog.
	CommitLog int
	// noMeters turns off the per-process and per-commit counters and the
	// commit log: the baseline of BenchmarkObserve (meters.off).
	noMeters bool

	// Pool tunes every pool's supervision (heartbeats, restart limits);
	// its Command, Workers, MaxFrame and Log are set by the supervisor.
	Pool pool.Config
	Log  zerolog.Logger
}

// Supervisor is a running theus. Start one, Serve the client socket,
// Shutdown to drain.
type Supervisor struct {
	cfg    Config
	mode   string // cfg.Mode, as every Reply carries it
	store  *cas.Store
	arb    *vip.Arbiter
	runner *cas.Runner
	pools  []*pool.Pool
	zone   *heavy.Zone
	// journal makes commits durable; nil in memory only.
	journal *durable.Journal
	// etcd holds the DATA zone when Config.Etcd is set (etcd.go); then
	// store stays empty and the runner commits to etcd.
	etcd *etcdBackend
	// signals publishes committed signals once durable (signals.go).
	signals *signal.Hub
	lost    int // tensors lost at the last restart (their paths were removed)
	// evac wakes the evacuator (owned by s, stopped by evacStop) when a
	// dead worker's slab holds tensors it could move.
	evac     chan struct{}
	evacStop chan struct{}
	evacDone sync.WaitGroup
	evacOnce sync.Once
	procs    map[string]*process
	flux     *flux.Engine
	names    []string
	ln       *ipc.Listener
	budget   *ipc.Budget // bytes of client frames being read

	base     context.Context // canceled when draining times out
	cancel   context.CancelFunc
	quit     context.Context // canceled when draining starts: streams end, runs stop at a step
	quitNow  context.CancelFunc
	methods  map[string]method
	streams  map[string]stream
	outbox   *outbox  // outbox.pull's leases
	audit    *auditor // nil without Config.Audit
	draining atomic.Bool
	drainMu  sync.RWMutex  // orders inflight.Add before inflight.Wait
	drained  chan struct{} // closed when Shutdown has finished
	inflight sync.WaitGroup
	seq      atomic.Uint64

	connMu sync.Mutex
	conns  map[*ipc.Conn]struct{}
	connWG sync.WaitGroup // a serveConn for each of conns; Add under connMu
	// connSeq numbers the connections, for their goroutines' labels.
	connSeq atomic.Uint64
	// gos runs the connections' readers: each Execute hands the reading
	// to a kept goroutine (its stack grown already) and runs on the
	// reader's own (serve.go).
	gos *gopool.Pool
	// wheel ends each execute's context at its timeout (execute.go),
	// cheapest under a client connection's Scope (serve.go).
	wheel *deadline.Wheel

	*meters // every counter (meters.go)
}

type process struct {
	pool *pool.Pool
	spec contract.Spec // its contract, bound to each call's args
}

// Start launches the pools and, when cfg.Socket is set, listens on it.
func Start(cfg Config) (*Supervisor, error) {
	if len(cfg.Plugins) == 0 {
		return nil, errors.New("supervisor: no worker plugin")
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 30 * time.Second
	}
	if cfg.MaxRedispatch <= 0 {
		cfg.MaxRedispatch = 3
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.MaxPerClient <= 0 {
		cfg.MaxPerClient = 1024
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 1024
	}
	if cfg.ClientBuffer <= 0 {
		cfg.ClientBuffer = 256 << 20
	}
	if cfg.FrameTimeout <= 0 {
		cfg.FrameTimeout = 10 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = ipc.DefaultWriteTimeout
	}
	if err := checkEtcd(cfg); err != nil {
		return nil, err
	}
	if maxFrame := cmp.Or(cfg.MaxFrame, protocol.DefaultMaxFrame); cfg.ClientBuffer < int64(maxFrame) {
		return nil, fmt.Errorf("supervisor: a client buffer of %d bytes cannot hold one frame of %d", cfg.ClientBuffer, maxFrame)
	}
	// undo holds what Start has made, to release in reverse on failure.
	var undo []func()
	fail := func(err error) (*Supervisor, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	m := newMeters(cfg.CommitLog, cfg.noMeters)
	arb := vip.New(vip.Config{Strict: cfg.Mode == cas.Strict, Trace: m.ticket})
	undo = append(undo, arb.Close)
	evac := make(chan struct{}, 1)
	var reclaim func() // the store's Collect, once the store exists
	zone, err := heavy.New(heavy.Config{
		Size: cfg.HeavySize, Workers: cfg.Workers * len(cfg.Plugins), InlineMax: cfg.HeavyInline,
		Changed: func() {
			select {
			case evac <- struct{}{}:
			default:
			}
		},
		Reclaim: func() { reclaim() },
		Log:     cfg.Log.With().Str("zone", "heavy").Logger(),
	})
	if err != nil {
		return fail(fmt.Errorf("supervisor: %w", err))
	}
	undo = append(undo, zone.Close)
	storeCfg := cas.Config{
		Arbiter: arb,
		Watch:   func(p contract.Path) bool { return p.InZone(contract.ZoneHeavy) },
		Dropped: func(_ contract.Path, v []byte) { zone.Drop(v) },
	}
	var journal *durable.Journal
	var state cas.State
	if cfg.Restore != "" {
		if state, err = restoreFrom(cfg); err != nil {
			return fail(err)
		}
	}
	if cfg.StateDir != "" && cfg.Durability != durable.None {
		journal, state, err = durable.Open(durable.Config{Dir: cfg.StateDir, Mode: cfg.Durability, Fault: cfg.JournalFault, MaxBatch: cfg.JournalMaxBatch, Flushed: m.flushed, Log: cfg.Log})
		if err != nil {
			return fail(fmt.Errorf("supervisor: %w", err))
		}
		undo = append(undo, func() { journal.Close() }) // the lock goes last
	}
	hub := newSignalHub(journal)
	undo = append(undo, hub.Close)
	storeCfg.Committed = func(c cas.Commit) { hub.Committed(c); m.committed(c) }
	if journal != nil {
		storeCfg.Committed = func(c cas.Commit) { journal.Append(c); hub.Committed(c); m.committed(c) }
	}
	store, err := cas.Restore(storeCfg, state)
	if err != nil {
		return fail(fmt.Errorf("supervisor: %w: %w", durable.ErrCorrupt, err))
	}
	reclaim = store.Collect
	s := &Supervisor{cfg: cfg, mode: cfg.Mode.String(), store: store, arb: arb, zone: zone, journal: journal, signals: hub, evac: evac, evacStop: make(chan struct{}), procs: map[string]*process{}, conns: map[*ipc.Conn]struct{}{}, drained: make(chan struct{}), gos: gopool.New(connGoroutines), meters: m}
	s.runner = &cas.Runner{Store: store, Arbiter: arb, Mode: cfg.Mode, VIPAfter: cfg.VIPAfter}
	s.wheel = deadline.New()
	undo = append(undo, s.wheel.Close)
	if cfg.Etcd != nil {
		if err := s.openEtcd(); err != nil {
			return fail(err)
		}
		undo = append(undo, s.etcd.close)
	}
	if err := s.dropLostTensors(state); err != nil {
		return fail(err)
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.quit, s.quitNow = context.WithCancel(context.Background())
	s.methods, s.streams = map[string]method{}, map[string]stream{}
	s.startOutbox()
	s.startSignals()
	s.startObserve()
	undo = append(undo, s.quitNow)
	undo = append(undo, s.cancel)
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelClose()
	for i, pl := range cfg.Plugins {
		pc := cfg.Pool
		pc.Command, pc.Pin, pc.Workers, pc.MaxFrame, pc.Heavy = pl.Command, pl.Pin, cfg.Workers, cfg.MaxFrame, zone
		pc.Log = cfg.Log.With().Str("plugin", pl.Command[0]).Logger()
		p, err := pool.Start(pc)
		if err != nil {
			return fail(fmt.Errorf("supervisor: plugin %d (%s): %w", i+1, pl.Command[0], err))
		}
		s.pools = append(s.pools, p)
		undo = append(undo, func() { p.Close(closeCtx) })
		if err := s.register(p); err != nil {
			return fail(err)
		}
	}
	s.names = slices.Sorted(maps.Keys(s.procs))
	s.addProcesses(s.names)
	if err := s.startAudit(); err != nil {
		return fail(err)
	}
	if err := s.startFlux(); err != nil {
		return fail(err)
	}
	s.evacDone.Go(s.evacuator)
	undo = append(undo, s.stopEvacuator) // before the pools: no tensor moves while they stop
	if cfg.Socket != "" {
		s.budget = ipc.NewBudget(cfg.ClientBuffer)
		ln, err := ipc.Listen(cfg.Socket, ipc.Options{MaxFrame: cfg.MaxFrame, Budget: s.budget, FrameTimeout: cfg.FrameTimeout, WriteTimeout: cfg.WriteTimeout})
		if err != nil {
			return fail(err)
		}
		s.ln = ln
	}
	if err := s.flux.Start(); err != nil { // resume the runs and machines a restart stopped
		return fail(fmt.Errorf("supervisor: %w", err))
	}
	undo = append(undo, s.flux.Close)
	return s, nil
}

// register adds the processes of p's workers, checking their contracts.
func (s *Supervisor) register(p *pool.Pool) error {
	for _, pi := range p.Processes() {
		if _, dup := s.procs[pi.Name]; dup {
			return fmt.Errorf("supervisor: process %q is registered by two plugins", pi.Name)
		}
		sem := contract.Pure
		if pi.Semantic == "effect" {
			sem = contract.Effect
		}
		spec, err := contract.NewSpec(pi.Name, pi.Inputs, pi.Outputs, sem)
		if err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
		s.procs[pi.Name] = &process{pool: p, spec: spec}
	}
	return nil
}

// stopEvacuator stops the evacuator (once) and waits for it.
func (s *Supervisor) stopEvacuator() {
	s.evacOnce.Do(func() { close(s.evacStop) })
	s.evacDone.Wait()
}

// Addr returns the client socket's path, or "" without one.
func (s *Supervisor) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Path()
}

// Heavy describes the HEAVY zone, after freeing every tensor no snapshot
// sees.
func (s *Supervisor) Heavy() heavy.Stats {
	s.store.Collect()
	return s.zone.Stats()
}

// Tensor returns the bytes of the tensor committed at path, read through
// the supervisor's own mapping (for checks; the bytes change if the
// tensor's writer is alive and writes them, see docs/HEAVY.md).
func (s *Supervisor) Tensor(path string) ([]byte, error) {
	p, err := contract.Parse(path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DefaultTimeout)
	defer cancel()
	snap, err := s.view(ctx, p)
	if err != nil {
		return nil, err
	}
	defer snap.Release()
	v, ok := snap.Get(p)
	if !ok {
		return nil, fmt.Errorf("supervisor: no value at %s", path)
	}
	value, perr := s.localTensor(p, v.Value)
	if perr != nil {
		return nil, perr
	}
	d, err := shm.ParseDescriptor(value, s.zone.InlineMax())
	if err != nil {
		return nil, err
	}
	b, err := s.zone.Bytes(d)
	if err != nil {
		return nil, err
	}
	return slices.Clone(b), nil
}

// Processes returns the names of the registered processes, sorted.
func (s *Supervisor) Processes() []string { return slices.Clone(s.names) }

// WorkerPIDs returns the process ids of every live worker.
func (s *Supervisor) WorkerPIDs() []int {
	var out []int
	for _, p := range s.pools {
		out = append(out, p.PIDs()...)
	}
	return out
}

// Shutdown drains: no new client or Execute is accepted, Executes in
// flight get until ctx ends (or DrainTimeout) to finish and are canceled
// after, client connections send their last replies and a Refuse
// (shutting_down) and close, every worker is stopped, and the state file
// is closed last, so that no second supervisor can open it while this
// one still runs. Each wait is bounded: DrainTimeout for the executes,
// closeGrace for the connections, 5 s for the workers.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.drainMu.Lock()
	first := s.draining.CompareAndSwap(false, true)
	s.drainMu.Unlock()
	if !first {
		select {
		case <-s.drained:
		case <-ctx.Done():
		}
		return nil
	}
	defer close(s.drained)
	s.quitNow()
	if s.ln != nil {
		s.ln.Close()
	}
	if s.flux != nil {
		s.flux.Close() // runs stop between steps, to resume at the next start
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer cancel()
	if !waitFor(ctx, s.inflight.Wait) {
		s.cfg.Log.Warn().Msg("drain deadline passed; canceling executes in flight")
	}
	s.cancel()
	s.closeClients()
	s.gos.Close()
	s.waitGrace(s.gos.Wait) // the readers of connections that outlived the grace go on without it
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelClose()
	s.stopEvacuator() // no tensor moves while the workers stop
	for _, p := range s.pools {
		p.Close(closeCtx)
	}
	s.arb.Close() // no invocation is left to hold or wait for a ticket
	s.wheel.Close()
	s.zone.Close()
	s.signals.Close() // before the journal it waits on
	s.etcd.close()
	if s.journal != nil {
		return s.journal.Close() // writes what is queued (Async)
	}
	return nil
}

// closeGrace bounds how long, once the executes of a drain have ended or
// been canceled, client connections get to send their last replies and
// close; then how long they get to return once closed by force.
const closeGrace = time.Second

// closeClients waits (closeGrace) for every client connection to finish
// after s.base ended, closes those left, and waits for them (closeGrace).
func (s *Supervisor) closeClients() {
	// draining is set, so track adds no connection from now on; taking
	// connMu orders every connWG.Add before the Wait below.
	s.connMu.Lock()
	open := len(s.conns)
	s.connMu.Unlock()
	done := func() { s.inflight.Wait(); s.connWG.Wait() }
	if s.waitGrace(done) {
		return
	}
	s.cfg.Log.Debug().Int("clients", open).Msg("client connections still open after the drain; closing them")
	s.connMu.Lock()
	open = len(s.conns)
	for c := range s.conns {
		c.Close()
	}
	s.connMu.Unlock()
	if !s.waitGrace(done) {
		s.cfg.Log.Warn().Int("clients", open).Msg("client connections still busy after the drain; stopping without them")
	}
}

// connGoroutines is how many client-connection goroutines the supervisor
// keeps idle for the next request: about a pipelining client's window.
const connGoroutines = 256

func (s *Supervisor) waitGrace(wait func()) bool {
	ctx, cancel := context.WithTimeout(context.Background(), closeGrace)
	defer cancel()
	return waitFor(ctx, wait)
}

// waitFor runs wait and reports whether it returned before ctx ended. If
// not, wait goes on in a goroutine that ends when it returns.
func waitFor(ctx context.Context, wait func()) bool {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// known lists the process names for an unknown-process error.
func (s *Supervisor) known() string { return strings.Join(s.names, ", ") }

// enter admits an Execute unless the supervisor is draining; the caller
// calls s.inflight.Done when it returns.
func (s *Supervisor) enter() bool {
	s.drainMu.RLock()
	defer s.drainMu.RUnlock()
	if s.draining.Load() {
		return false
	}
	s.inflight.Add(1)
	return true
}
