package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/rs/zerolog"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/schema"
	"github.com/theus-run/theus/supervisor"
)

// config checks the flags and turns them into the supervisor's
// configuration (without its logger, and without --demo's temporary
// socket and state directory, which run makes).
func (f flags) config() (supervisor.Config, error) {
	bad := func(err error) (supervisor.Config, error) { return supervisor.Config{}, err }
	var mode cas.Mode
	switch f.mode {
	case "smart":
		mode = cas.Smart
	case "strict":
		mode = cas.Strict
	case "training":
		mode = cas.Training
	default:
		return bad(fmt.Errorf("--mode %q: want smart, strict or training", f.mode))
	}
	if f.workers < 1 {
		return bad(fmt.Errorf("--workers %d: want at least 1", f.workers))
	}
	if f.workerProcs < 0 {
		return bad(fmt.Errorf("--worker-procs %d: want 0 (Go's default) or more", f.workerProcs))
	}
	if f.transport != pool.TransportRing && f.transport != pool.TransportSocket {
		return bad(fmt.Errorf("--worker-transport %q: want %s or %s", f.transport, pool.TransportRing, pool.TransportSocket))
	}
	if err := pool.CheckWorkerPoll(f.workerPoll); err != nil {
		return bad(err)
	}
	if f.executePath != "continuation" && f.executePath != "goroutine" {
		return bad(fmt.Errorf("--execute-path %q: want continuation or goroutine", f.executePath))
	}
	if f.maxFrame < 1<<10 {
		return bad(fmt.Errorf("--max-frame %d: want at least 1024", f.maxFrame))
	}
	if f.maxClients < 1 || f.maxClients > maxClients {
		return bad(fmt.Errorf("--max-clients %d: want 1 to %d (each client holds a descriptor)", f.maxClients, maxClients))
	}
	clientBuffer, err := size("client-buffer", f.clientBuffer, 1<<46)
	if err != nil {
		return bad(err)
	}
	if clientBuffer < int64(f.maxFrame) {
		return bad(fmt.Errorf("--client-buffer %s: want at least --max-frame (%d bytes)", f.clientBuffer, f.maxFrame))
	}
	if f.frameTimeout <= 0 {
		return bad(fmt.Errorf("--frame-timeout %s: want a positive duration", f.frameTimeout))
	}
	if f.writeTimeout <= 0 {
		return bad(fmt.Errorf("--write-timeout %s: want a positive duration", f.writeTimeout))
	}
	heavySize, err := size("heavy-size", f.heavySize, 1<<46)
	if err != nil {
		return bad(err)
	}
	if _, err := f.gcFloorBytes(); err != nil { // the process's, not the supervisor's: run applies it
		return bad(err)
	}
	heavyInline, err := size("heavy-inline", f.heavyInline, 1<<30)
	if err != nil {
		return bad(err)
	}
	if heavyInline == 0 {
		return bad(fmt.Errorf("--heavy-inline 0: want a size > 0"))
	}
	if heavyInline >= int64(f.maxFrame)/2 {
		return bad(fmt.Errorf("--heavy-inline %s: an inline tensor must fit a frame (--max-frame %d) with room to spare", f.heavyInline, f.maxFrame))
	}
	if err := f.http.check(f.demo); err != nil {
		return bad(err)
	}
	if f.commitLog < 1 || f.commitLog > 1<<20 {
		return bad(fmt.Errorf("--commit-log %d: want 1 to %d", f.commitLog, 1<<20))
	}
	durability, err := durable.ParseMode(f.durability)
	if err != nil {
		return bad(fmt.Errorf("--durability: %w", err))
	}
	stateDir := f.stateDir
	if durability != durable.None && stateDir == "" {
		return bad(errors.New("--state-dir: no home directory to default to; give one, or --durability none"))
	}
	cmds, err := plugins(f.plugins)
	if err != nil {
		return bad(err)
	}
	var gate *schema.Gate
	if f.schema != "" {
		if gate, err = schema.Load(f.schema); err != nil {
			return bad(fmt.Errorf("--schema: %w", err))
		}
	}
	socket := f.socket
	if socket == "" {
		socket = ipc.DefaultPath()
	}
	cfg := supervisor.Config{
		Plugins: cmds, Workers: f.workers, Socket: socket, Mode: mode, VIPAfter: f.vipAfter,
		MaxFrame: f.maxFrame, DrainTimeout: f.drainTimeout, HeavySize: heavySize, HeavyInline: int(heavyInline),
		StateDir: stateDir, Durability: durability, Restore: f.restore,
		MaxClients: f.maxClients, ClientBuffer: clientBuffer, FrameTimeout: f.frameTimeout, WriteTimeout: f.writeTimeout,
		Flux: f.flux, Schema: gate, Audit: f.audit, CommitLog: f.commitLog,
	}
	cfg.Pool.Env = []string{demo.FaultsEnv(f.faults)} // set either way: never inherited
	if f.workerProcs > 0 {
		// After the supervisor's own environment: the flag wins over an
		// inherited GOMAXPROCS.
		cfg.Pool.Env = append(cfg.Pool.Env, "GOMAXPROCS="+strconv.Itoa(f.workerProcs))
	}
	cfg.Pool.Transport = f.transport
	cfg.Pool.WorkerPoll = f.workerPoll
	if f.workerPoll == 0 {
		cfg.Pool.WorkerPoll = -1 // the pool's 0 is its default
	}
	cfg.GoroutinePerExecute = f.executePath == "goroutine"
	return cfg, nil
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

// gcFloorBytes is --gc-floor in bytes (internal/gcfloor).
func (f flags) gcFloorBytes() (uint64, error) {
	n, err := size("gc-floor", f.gcFloor, 1<<40)
	return uint64(n), err
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
