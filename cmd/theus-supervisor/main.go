// Command theus-supervisor runs theus: a pool of worker processes, the
// Context store they commit to, and the client socket that theusctl and
// the Go client use. Without --plugin it runs the demo processes by
// re-executing itself as a worker (the fault.* ones only with --faults).
// --demo runs a short workload and exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/flux"
	"github.com/theus-run/theus/internal/gcfloor"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/schema"
	"github.com/theus-run/theus/supervisor"
	"github.com/theus-run/theus/worker"
)

func main() {
	if worker.Launched() {
		worker.Main(demo.Served(os.Getenv)...) // re-executed as the default worker
	}
	var f flags
	if err := command(&f).Execute(); err != nil {
		if errors.Is(err, durable.ErrCorrupt) || errors.Is(err, durable.ErrNewerFormat) || errors.Is(err, durable.ErrLocked) {
			os.Exit(ExitState)
		}
		var le *flux.LoadError
		if errors.As(err, &le) {
			os.Exit(ExitFlux)
		}
		var se *schema.LoadError
		if errors.As(err, &se) {
			os.Exit(ExitSchema)
		}
		os.Exit(1)
	}
}

// maxClients bounds --max-clients: an idle client connection holds no
// OS thread (ipc/park.go), but a descriptor and about 13 KiB.
const maxClients = 65536

// ExitState is the exit status when the state file, or the backup given
// to --restore, cannot be used (corrupt, of a newer format, or held by
// another supervisor); 1 is every other error.
const ExitState = 3

// ExitFlux is the exit status when a file in --flux does not load: each
// problem is on stderr as file:line:col: message.
const ExitFlux = 2

// ExitSchema is the exit status when the --schema file does not load
// (unreadable, not a mapping of patterns to schemas, a bad pattern or a
// schema that does not compile): the reason is on stderr.
const ExitSchema = 4

type flags struct {
	workers      int
	workerProcs  int
	plugins      []string
	socket       string
	mode         string
	vipAfter     int
	logFormat    string
	logLevel     string
	demo         bool
	flux         string
	schema       string
	audit        string
	maxFrame     int
	transport    string
	workerPoll   time.Duration
	executePath  string
	drainTimeout time.Duration
	heavySize    string
	heavyInline  string
	stateDir     string
	durability   string
	restore      string
	faults       bool
	maxClients   int
	clientBuffer string
	frameTimeout time.Duration
	writeTimeout time.Duration
	etcd         etcdFlags
	commitLog    int
	http         httpFlags
	gcFloor      string
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// command is theus-supervisor's command line; its flags land in f.
func command(f *flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "theus-supervisor",
		Short: "Run theus: worker processes, a transactional Context, a client socket",
		Long: `theus-supervisor starts --workers worker processes for each --plugin (the
built-in demo worker when none is given), commits their deltas through the
CAS engine, and serves clients (theusctl, the Go client) on --socket until
SIGINT or SIGTERM, then drains and exits 0.

A plugin may be pinned to a checksum: --plugin PATH@sha256:HEX reads the
binary once, refuses it if its SHA-256 differs, and runs every worker,
restarts included, from that checked copy (kept in a sealed memfd), so
replacing or deleting the file has no effect until the supervisor
restarts. An unpinned plugin is executed from its path at every start.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := run(cmd, *f)
			if err != nil {
				fmt.Fprintln(os.Stderr, "theus-supervisor:", err)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.workers, "workers", runtime.NumCPU(), "worker processes per plugin")
	fl.IntVar(&f.workerProcs, "worker-procs", 1, "GOMAXPROCS of each Go worker: the cores one worker's processes use at once (0: Go's default, every CPU); the workers are the parallelism")
	fl.StringArrayVar(&f.plugins, "plugin", nil, "worker plugin binary, PATH or PATH@sha256:HEX (repeatable; default: the built-in demo worker)")
	fl.StringVar(&f.socket, "socket", "", "client socket path (default $THEUS_SOCKET, else $XDG_RUNTIME_DIR/theus/theus.sock, else /tmp/theus-<uid>/theus.sock)")
	fl.StringVar(&f.mode, "mode", "smart", "commit validation: smart (read and write sets), strict (global version) or training (none: last writer wins, no retries)")
	fl.IntVar(&f.vipAfter, "vip-after", cas.DefaultVIPAfter, "conflicts before an invocation takes a VIP ticket (negative: never)")
	fl.StringVar(&f.logFormat, "log-format", "", "json or console (default: console on a terminal, else json)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default info; warn with --demo)")
	fl.BoolVar(&f.demo, "demo", false, "run a short built-in workload, print a summary and exit")
	fl.IntVar(&f.maxFrame, "max-frame", 16<<20, "largest frame accepted from a worker or client, in bytes")
	fl.StringVar(&f.transport, "worker-transport", pool.DefaultTransport, "how dispatches and results travel to and from workers: ring (shared memory, for workers that map it) or socket")
	fl.DurationVar(&f.workerPoll, "worker-poll", pool.DefaultWorkerPoll, "how long an idle worker polls its ring for the next dispatch before it parks, while few dispatches are in flight in its plugin's pool (8 per GOMAXPROCS of the supervisor; 1 per CPU of a CPU quota that GOMAXPROCS overstates, as one of a CPU or less): a lone client's next call then finds the worker awake, for up to this much CPU per call; 0: never poll; else whole microseconds up to 1ms")
	fl.StringVar(&f.executePath, "execute-path", "continuation", "how a client's execute waits for its worker: continuation (no goroutine waits: the reader of the worker's replies commits and replies) or goroutine (one goroutine per execute, the path etcd and audit recipes always take; for comparison)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long executes in flight may take to finish (then 1s for the last replies, 5s for the workers to exit)")
	fl.StringVar(&f.heavySize, "heavy-size", envOr("THEUS_HEAVY_SIZE", "1GiB"), "HEAVY zone (shared-memory tensors) budget, split into one slab per worker; 0 keeps only inline tensors (default $THEUS_HEAVY_SIZE, else 1GiB)")
	fl.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "directory of the durable state file (default $THEUS_STATE_DIR, else $XDG_STATE_HOME/theus, else ~/.local/state/theus; --demo: a temporary one)")
	fl.StringVar(&f.restore, "restore", "", "start from this backup (theusctl snapshot save), checked in full first; the state file it replaces is kept beside it, renamed")
	fl.StringVar(&f.durability, "durability", "sync", "sync (no reply before the commit is on disk), async (fsync every 100ms: a crash loses at most that) or none (memory only)")
	fl.StringVar(&f.heavyInline, "heavy-inline", "2KiB", "tensors up to this size travel inline in messages instead of through the HEAVY arena")
	fl.StringVar(&f.flux, "flux", "", "directory of Flux workflow and state-machine files (*.yaml, *.yml) to load; an invalid one stops the start (exit status 2)")
	fl.StringVar(&f.schema, "schema", "", "JSON or YAML file of path patterns (* is one segment) and the JSON Schemas that values written there must satisfy; a commit that breaks one fails with schema_violation; a bad file stops the start (exit status 4)")
	fl.StringVar(&f.audit, "audit", "", "audit recipe (YAML) to check every call's args and writes with; theusctl audit reload or SIGHUP reloads it; an invalid one stops the start")
	fl.BoolVar(&f.faults, "faults", false, "let the demo worker serve fault.crash, fault.sleep and fault.undeclared, which crash or hang workers for any client (tests and benchmarks only)")
	fl.IntVar(&f.maxClients, "max-clients", 1024, "client connections served at once (each holds a descriptor: raise ulimit -n to match); past it a client gets too_many_clients")
	fl.StringVar(&f.clientBuffer, "client-buffer", "256MiB", "memory for client frames still arriving, all clients together (at least --max-frame); a large frame waits for room")
	fl.DurationVar(&f.frameTimeout, "frame-timeout", 10*time.Second, "how long a client frame may take to arrive once its header has; a client stalled inside a frame is disconnected")
	fl.DurationVar(&f.writeTimeout, "write-timeout", ipc.DefaultWriteTimeout, "how long one write of replies to a client may wait for room in its socket; a client that stops reading is disconnected")
	f.etcd.register(fl)
	fl.StringVar(&f.gcFloor, "gc-floor", "64MiB", "the Go heap size under which the supervisor's garbage collector does not run (its executes make short-lived garbage fast; a larger live heap collects as with GOGC=100); 0: Go's default. Ignored when GOGC is set")
	fl.IntVar(&f.commitLog, "commit-log", supervisor.DefaultCommitLog, "commits the commit log keeps (theusctl log, /api/log)")
	fl.StringVar(&f.http.addr, "http", "", "serve the status page, /metrics and /api/log (read only) on this address, e.g. 127.0.0.1:9090; off by default (--demo: a free loopback port)")
	fl.BoolVar(&f.http.allowRemote, "http-allow-remote", false, "let --http listen on an address other than loopback; requires --http-token-file")
	fl.StringVar(&f.http.tokenFile, "http-token-file", "", "file holding the bearer token every HTTP request must carry (mode 0600, at least 16 characters)")
	fl.BoolVar(&f.http.pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ on the --http listener")
	return cmd
}

func run(cmd *cobra.Command, f flags) error {
	log, err := logger(f)
	if err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	gcFloor, err := f.gcFloorBytes()
	if err != nil {
		return err
	}
	gc := gcfloor.Start(gcFloor)
	defer gc.Stop()
	if err := f.storeConfig(&cfg, cmd.Flags().Changed); err != nil {
		return err
	}
	cfg.Log = log
	if f.demo && !cmd.Flags().Changed("socket") {
		dir, err := os.MkdirTemp("", "theus-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Socket = filepath.Join(dir, "theus.sock")
		if !cmd.Flags().Changed("state-dir") {
			cfg.StateDir = filepath.Join(dir, "state")
		}
	}
	if f.demo && cfg.Flux == "" { // the demo's workflow and machine
		dir, err := os.MkdirTemp("", "theus-demo-flux-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := demo.WriteFlux(dir); err != nil {
			return err
		}
		cfg.Flux = dir
	}
	// SIGHUP reloads the audit recipe once the supervisor has started.
	var sup atomic.Pointer[supervisor.Supervisor]
	ctx, stop := signals(log, func() bool { return reloadAudit(sup.Load(), cfg.Audit, log) }) // before the socket exists: a signal from then on drains
	defer stop()
	// Workers' descendants that leave their process group are reparented
	// here and killed; whatever is left dies after the supervisor stops.
	orphans, err := pool.AdoptOrphans(log)
	if err != nil {
		return err
	}
	defer orphans.Close(f.drainTimeout)
	cfg.Pool.Orphans = orphans
	web, err := f.http.prepare(f.demo)
	if err != nil {
		return err
	}
	s, err := supervisor.Start(cfg)
	if err != nil {
		return err
	}
	sup.Store(s)
	closeHTTP, err := startHTTP(ctx, web, f, s, log)
	if err != nil {
		s.Shutdown(context.Background())
		return err
	}
	defer closeHTTP()
	if f.faults {
		log.Warn().Msg("--faults: any client can crash or hang the demo worker's workers (fault.*)")
	}
	if f.demo {
		return runDemo(ctx, s)
	}
	hs := s.Heavy()
	log.Info().Str("socket", s.Addr()).Int("workers", f.workers).Str("durability", f.durability).Str("state_dir", cfg.StateDir).Strs("processes", s.Processes()).Str("mode", f.mode).
		Str("heavy_size", humanize.IBytes(uint64(hs.Size))).Str("heavy_slab", humanize.IBytes(uint64(hs.SlabSize))).
		Bool("huge_pages", hs.HugeKiB > 0).Msg("theus-supervisor ready")
	err = s.Serve(ctx)
	log.Info().Msg("theus-supervisor stopped")
	return err
}

func runDemo(ctx context.Context, s *supervisor.Supervisor) error {
	serveCtx, stopServe := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Serve(serveCtx) }()
	c, err := client.Dial(s.Addr())
	if err == nil {
		err = demo.Run(ctx, c, os.Stdout, demo.Options{})
		c.Close()
	}
	stopServe()
	if serr := <-done; err == nil {
		err = serr
	}
	return err // a demo.ErrInvariant fails the command
}
