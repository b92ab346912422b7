package wasm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/signal"
	"github.com/theus-run/theus/vip"
)

// DefaultTimeout bounds a call that gives no timeout, as the supervisor's
// --timeout default does.
const DefaultTimeout = 30 * time.Second

// Config describes a Runtime. The zero value is usable.
type Config struct {
	Mode cas.Mode // smart (the zero value), strict or training
	// VIPAfter is the number of conflicts after which a call takes a
	// ticket (cas.Runner.VIPAfter); 0 for the default, negative for never.
	VIPAfter int
	// Timeout bounds a call that gives none; default DefaultTimeout.
	Timeout time.Duration
	// Restore, when set, is the Context to start from (what Export
	// returned, in this instance or another).
	Restore *cas.State
	// Log receives what the Flux engine has to say; nil discards it.
	Log func(format string, args ...any)
}

// Runtime is one Context with its processes and its Flux engine. Make one
// with New; Close stops it.
type Runtime struct {
	cfg    Config
	store  *cas.Store
	arb    *vip.Arbiter
	runner *cas.Runner
	hub    *signal.Hub
	flux   *flux.Engine
	seq    atomic.Uint64 // names the owners of calls, for the arbiter
	// base ends with Close: it cancels the calls in flight.
	base context.Context
	stop context.CancelFunc

	mu struct {
		sync.Mutex
		procs   map[string]proc
		started bool // the Flux engine resumed what the Context says was live
		closed  bool
	}
	start sync.Mutex // held while the engine starts, so runs wait for it
}

// proc is a registered process.
type proc struct {
	spec contract.Spec
	run  Process
}

// Decl is a process's contract as declared: paths, which may name a
// segment after an argument ("domain.accounts.{from}"), and whether the
// process may observe the outside world (read signals).
type Decl struct {
	Inputs  []string `json:"inputs"`
	Outputs []string `json:"outputs"`
	Effect  bool     `json:"effect"`
}

// New makes a Runtime.
func New(cfg Config) (*Runtime, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Mode > cas.Training {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "unknown mode %d", cfg.Mode)
	}
	r := &Runtime{cfg: cfg}
	r.base, r.stop = context.WithCancel(context.Background())
	r.mu.procs = map[string]proc{}
	r.arb = vip.New(vip.Config{Strict: cfg.Mode == cas.Strict})
	r.hub = signal.New(signal.Config{}) // no journal: a commit is published once applied
	scfg := cas.Config{Arbiter: r.arb, Committed: r.hub.Committed}
	if cfg.Restore != nil {
		s, err := cas.Restore(scfg, *cfg.Restore)
		if err != nil {
			r.hub.Close()
			r.arb.Close()
			r.stop()
			return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()}
		}
		r.store = s
	} else {
		r.store = cas.New(scfg)
	}
	r.runner = &cas.Runner{Store: r.store, Arbiter: r.arb, Mode: cfg.Mode, VIPAfter: cfg.VIPAfter}
	eng, err := flux.New(flux.Config{Host: host{r}, Log: cfg.Log})
	if err != nil { // cannot happen without a directory to load
		r.hub.Close()
		r.arb.Close()
		r.stop()
		return nil, fmt.Errorf("wasm: %w", err)
	}
	r.flux = eng
	return r, nil
}

// Close stops every Flux run where it is (Export keeps where), then the
// calls in flight and the signal hub, and fails every later call with
// shutting_down (those in flight too). It is safe to call twice.
func (r *Runtime) Close() {
	r.start.Lock() // a start in progress ends first; none begins after
	r.mu.Lock()
	was := r.mu.closed
	r.mu.closed = true
	r.mu.Unlock()
	r.start.Unlock()
	if was {
		return
	}
	r.flux.Close()
	r.stop()
	r.hub.Close()
	r.arb.Close()
}

var errClosed = &protocol.Error{Code: protocol.CodeShuttingDown, Message: "the context is closed"}

func (r *Runtime) closed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.closed
}

// Mode is the Runtime's commit mode.
func (r *Runtime) Mode() cas.Mode { return r.cfg.Mode }

// Register adds a process. Its contract is checked as the supervisor
// checks a worker's: an invalid one is refused with bad_request, as is a
// name already registered.
func (r *Runtime) Register(name string, d Decl, p Process) error {
	if name == "" || p == nil {
		return protocol.Errorf(protocol.CodeBadRequest, "register: a process needs a name and a function")
	}
	sem := contract.Pure
	if d.Effect {
		sem = contract.Effect
	}
	spec, err := contract.NewSpec(name, d.Inputs, d.Outputs, sem)
	if err != nil {
		var v *contract.Violation
		if errors.As(err, &v) {
			return &protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error(), Path: string(v.Path)}
		}
		return protocol.Errorf(protocol.CodeBadRequest, "%v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.closed {
		return errClosed
	}
	if _, ok := r.mu.procs[name]; ok {
		return protocol.Errorf(protocol.CodeBadRequest, "register: process %q is registered already", name)
	}
	r.mu.procs[name] = proc{spec: spec, run: p}
	return nil
}

func (r *Runtime) lookup(name string) (proc, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.mu.procs[name]
	return p, ok
}

// known lists the registered processes, for an unknown_process error.
func (r *Runtime) known() string {
	r.mu.Lock()
	names := make([]string, 0, len(r.mu.procs))
	for n := range r.mu.procs {
		names = append(names, n)
	}
	r.mu.Unlock()
	if len(names) == 0 {
		return "none"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
