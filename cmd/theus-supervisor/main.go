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
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/supervisor"
	"github.com/theus-run/theus/worker"
)

func main() {
	if worker.Launched() {
		worker.Main(demo.Served(os.Getenv)...) // re-executed as the default worker
	}
	if err := command().Execute(); err != nil {
		if errors.Is(err, durable.ErrCorrupt) || errors.Is(err, durable.ErrNewerFormat) || errors.Is(err, durable.ErrLocked) {
			os.Exit(ExitState)
		}
		os.Exit(1)
	}
}

// maxClients bounds --max-clients: a client connection holds an OS
// thread, and a Go program dies at 10,000.
const maxClients = 8192

// ExitState is the exit status when the state file, or the backup given
// to --restore, cannot be used (corrupt, of a newer format, or held by
// another supervisor); 1 is every other error.
const ExitState = 3

type flags struct {
	workers      int
	plugins      []string
	socket       string
	mode         string
	vipAfter     int
	logFormat    string
	logLevel     string
	demo         bool
	maxFrame     int
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
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

func command() *cobra.Command {
	var f flags
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
			err := run(cmd, f)
			if err != nil {
				fmt.Fprintln(os.Stderr, "theus-supervisor:", err)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.workers, "workers", runtime.NumCPU(), "worker processes per plugin")
	fl.StringArrayVar(&f.plugins, "plugin", nil, "worker plugin binary, PATH or PATH@sha256:HEX (repeatable; default: the built-in demo worker)")
	fl.StringVar(&f.socket, "socket", "", "client socket path (default $THEUS_SOCKET, else $XDG_RUNTIME_DIR/theus/theus.sock, else /tmp/theus-<uid>/theus.sock)")
	fl.StringVar(&f.mode, "mode", "smart", "commit validation: smart (read and write sets) or strict (global version)")
	fl.IntVar(&f.vipAfter, "vip-after", cas.DefaultVIPAfter, "conflicts before an invocation takes a VIP ticket (negative: never)")
	fl.StringVar(&f.logFormat, "log-format", "", "json or console (default: console on a terminal, else json)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default info; warn with --demo)")
	fl.BoolVar(&f.demo, "demo", false, "run a short built-in workload, print a summary and exit")
	fl.IntVar(&f.maxFrame, "max-frame", 16<<20, "largest frame accepted from a worker or client, in bytes")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 10*time.Second, "on SIGTERM, how long executes in flight may take to finish (then 1s for the last replies, 5s for the workers to exit)")
	fl.StringVar(&f.heavySize, "heavy-size", envOr("THEUS_HEAVY_SIZE", "1GiB"), "HEAVY zone (shared-memory tensors) budget, split into one slab per worker; 0 keeps only inline tensors (default $THEUS_HEAVY_SIZE, else 1GiB)")
	fl.StringVar(&f.stateDir, "state-dir", defaultStateDir(), "directory of the durable state file (default $THEUS_STATE_DIR, else $XDG_STATE_HOME/theus, else ~/.local/state/theus; --demo: a temporary one)")
	fl.StringVar(&f.restore, "restore", "", "start from this backup (theusctl snapshot save), checked in full first; the state file it replaces is kept beside it, renamed")
	fl.StringVar(&f.durability, "durability", "sync", "sync (no reply before the commit is on disk), async (fsync every 100ms: a crash loses at most that) or none (memory only)")
	fl.StringVar(&f.heavyInline, "heavy-inline", "2KiB", "tensors up to this size travel inline in messages instead of through the HEAVY arena")
	fl.BoolVar(&f.faults, "faults", false, "let the demo worker serve fault.crash, fault.sleep and fault.undeclared, which crash or hang workers for any client (tests and benchmarks only)")
	fl.IntVar(&f.maxClients, "max-clients", 1024, "client connections served at once (each holds an OS thread); past it a client gets too_many_clients")
	fl.StringVar(&f.clientBuffer, "client-buffer", "256MiB", "memory for client frames still arriving, all clients together (at least --max-frame); a large frame waits for room")
	fl.DurationVar(&f.frameTimeout, "frame-timeout", 10*time.Second, "how long a client frame may take to arrive once its header has; a client stalled inside a frame is disconnected")
	return cmd
}

func defaultStateDir() string {
	if d := os.Getenv("THEUS_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "theus")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "theus")
	}
	return ""
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// size parses a flag's byte size: "1GiB", "512MB", "65536".
func size(flag, v string, limit uint64) (int64, error) {
	n, err := humanize.ParseBytes(v)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: %w", flag, v, err)
	}
	if n > limit {
		return 0, fmt.Errorf("--%s %s: over %s", flag, v, humanize.IBytes(limit))
	}
	return int64(n), nil
}

func logger(f flags) (zerolog.Logger, error) {
	var w io.Writer = os.Stderr
	format := f.logFormat
	if format == "" {
		format = "json"
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "console"
		}
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Logger{}, fmt.Errorf("--log-format %q: want json or console", f.logFormat)
	}
	level := f.logLevel
	if level == "" {
		level = "info"
		if f.demo {
			level = "warn"
		}
	}
	lv, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("--log-level %q: %w", level, err)
	}
	return zerolog.New(w).Level(lv).With().Timestamp().Logger(), nil
}

// plugins turns --plugin values into pool plugins; none means the
// built-in demo worker (this binary, re-executed).
func plugins(specs []string) ([]pool.Plugin, error) {
	if len(specs) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the built-in worker: %w", err)
		}
		return []pool.Plugin{{Command: []string{self}}}, nil
	}
	var out []pool.Plugin
	for _, spec := range specs {
		pl, err := pool.ParsePlugin(spec)
		if err != nil {
			return nil, fmt.Errorf("--%w", err)
		}
		out = append(out, pl)
	}
	return out, nil
}

func run(cmd *cobra.Command, f flags) error {
	log, err := logger(f)
	if err != nil {
		return err
	}
	var mode cas.Mode
	switch f.mode {
	case "smart":
		mode = cas.Smart
	case "strict":
		mode = cas.Strict
	default:
		return fmt.Errorf("--mode %q: want smart or strict", f.mode)
	}
	if f.workers < 1 {
		return fmt.Errorf("--workers %d: want at least 1", f.workers)
	}
	if f.maxFrame < 1<<10 {
		return fmt.Errorf("--max-frame %d: want at least 1024", f.maxFrame)
	}
	if f.maxClients < 1 || f.maxClients > maxClients {
		return fmt.Errorf("--max-clients %d: want 1 to %d (each client holds an OS thread; Go stops at 10000)", f.maxClients, maxClients)
	}
	clientBuffer, err := size("client-buffer", f.clientBuffer, 1<<46)
	if err != nil {
		return err
	}
	if clientBuffer < int64(f.maxFrame) {
		return fmt.Errorf("--client-buffer %s: want at least --max-frame (%d bytes)", f.clientBuffer, f.maxFrame)
	}
	if f.frameTimeout <= 0 {
		return fmt.Errorf("--frame-timeout %s: want a positive duration", f.frameTimeout)
	}
	heavySize, err := size("heavy-size", f.heavySize, 1<<46)
	if err != nil {
		return err
	}
	heavyInline, err := size("heavy-inline", f.heavyInline, 1<<30)
	if err != nil {
		return err
	}
	if heavyInline == 0 {
		return fmt.Errorf("--heavy-inline 0: want a size > 0")
	}
	if heavyInline >= int64(f.maxFrame)/2 {
		return fmt.Errorf("--heavy-inline %s: an inline tensor must fit a frame (--max-frame %d) with room to spare", f.heavyInline, f.maxFrame)
	}
	durability, err := durable.ParseMode(f.durability)
	if err != nil {
		return fmt.Errorf("--durability: %w", err)
	}
	stateDir := f.stateDir
	if durability != durable.None && stateDir == "" {
		return errors.New("--state-dir: no home directory to default to; give one, or --durability none")
	}
	cmds, err := plugins(f.plugins)
	if err != nil {
		return err
	}
	socket := f.socket
	if socket == "" {
		socket = ipc.DefaultPath()
	}
	if f.demo && !cmd.Flags().Changed("socket") {
		dir, err := os.MkdirTemp("", "theus-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		socket = filepath.Join(dir, "theus.sock")
		if !cmd.Flags().Changed("state-dir") {
			stateDir = filepath.Join(dir, "state")
		}
	}
	ctx, stop := signals(log) // before the socket exists: a signal from then on drains
	defer stop()
	cfg := supervisor.Config{
		Plugins: cmds, Workers: f.workers, Socket: socket, Mode: mode, VIPAfter: f.vipAfter,
		MaxFrame: f.maxFrame, DrainTimeout: f.drainTimeout, HeavySize: heavySize, HeavyInline: int(heavyInline),
		StateDir: stateDir, Durability: durability, Restore: f.restore, Log: log,
		MaxClients: f.maxClients, ClientBuffer: clientBuffer, FrameTimeout: f.frameTimeout,
	}
	cfg.Pool.Env = []string{demo.FaultsEnv(f.faults)} // set either way: never inherited
	// Workers' descendants that leave their process group are reparented
	// here and killed; whatever is left dies after the supervisor stops.
	orphans, err := pool.AdoptOrphans(log)
	if err != nil {
		return err
	}
	defer orphans.Close(f.drainTimeout)
	cfg.Pool.Orphans = orphans
	s, err := supervisor.Start(cfg)
	if err != nil {
		return err
	}
	if f.faults {
		log.Warn().Msg("--faults: any client can crash or hang the demo worker's workers (fault.*)")
	}
	if f.demo {
		return runDemo(ctx, s)
	}
	hs := s.Heavy()
	log.Info().Str("socket", s.Addr()).Int("workers", f.workers).Str("durability", f.durability).Str("state_dir", stateDir).Strs("processes", s.Processes()).Str("mode", f.mode).
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
