package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/pool"
)

// parse runs args through the real command line and returns the
// supervisor's configuration, or the error a user would see.
func parse(t *testing.T, args ...string) (flags, error) {
	t.Helper()
	var f flags
	if err := command(&f).ParseFlags(args); err != nil {
		return f, err
	}
	_, err := f.config()
	return f, err
}

func TestFlagDefaults(t *testing.T) {
	t.Setenv("THEUS_SOCKET", "/run/x/theus.sock")
	t.Setenv("THEUS_STATE_DIR", "/var/lib/theus-test")
	t.Setenv("THEUS_HEAVY_SIZE", "")
	var f flags
	if err := command(&f).ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	switch {
	case len(cfg.Plugins) != 1 || cfg.Plugins[0].Command[0] != self || cfg.Plugins[0].Pin != "":
		t.Errorf("plugins %+v, want this binary, unpinned", cfg.Plugins)
	case cfg.Socket != "/run/x/theus.sock" || cfg.StateDir != "/var/lib/theus-test":
		t.Errorf("socket %q, state dir %q: the environment's defaults were not used", cfg.Socket, cfg.StateDir)
	case cfg.Mode != cas.Smart || cfg.Durability != durable.Sync || cfg.HeavySize != 1<<30 || cfg.HeavyInline != 2<<10:
		t.Errorf("mode %v, durability %v, heavy %d/%d", cfg.Mode, cfg.Durability, cfg.HeavySize, cfg.HeavyInline)
	case cfg.MaxClients != 1024 || cfg.ClientBuffer != 256<<20 || cfg.FrameTimeout != 10*time.Second || cfg.WriteTimeout != 10*time.Second || cfg.DrainTimeout != 10*time.Second:
		t.Errorf("client limits %d %d %s %s, drain %s", cfg.MaxClients, cfg.ClientBuffer, cfg.FrameTimeout, cfg.WriteTimeout, cfg.DrainTimeout)
	case len(cfg.Pool.Env) != 2 || cfg.Pool.Env[0] != "THEUS_DEMO_FAULTS=" || cfg.Pool.Env[1] != "GOMAXPROCS=1":
		t.Errorf("pool env %q: fault.* must be off, and set so it is never inherited; the workers' GOMAXPROCS 1", cfg.Pool.Env)
	}
}

func TestFlagsRefused(t *testing.T) {
	exe, _ := os.Executable()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "loose"}, `--mode "loose": want smart, strict or training`},
		{[]string{"--workers", "0"}, "--workers 0: want at least 1"},
		{[]string{"--worker-procs", "-1"}, "--worker-procs -1: want 0 (Go's default) or more"},
		{[]string{"--max-frame", "1000"}, "--max-frame 1000: want at least 1024"},
		{[]string{"--worker-poll", "-1us"}, "--worker-poll -1µs: want 0 (never) or whole microseconds up to 1ms"},
		{[]string{"--worker-poll", "2ms"}, "--worker-poll 2ms: want 0 (never) or whole microseconds up to 1ms"},
		{[]string{"--worker-poll", "500ns"}, "--worker-poll 500ns: want 0 (never) or whole microseconds up to 1ms"},
		{[]string{"--worker-poll", "1500ns"}, "--worker-poll 1.5µs: want 0 (never) or whole microseconds up to 1ms"},
		{[]string{"--execute-path", "threads"}, `--execute-path "threads": want continuation or goroutine`},
		{[]string{"--worker-transport", "tcp"}, `--worker-transport "tcp": want ring or socket`},
		{[]string{"--max-clients", "0"}, "--max-clients 0"},
		{[]string{"--max-clients", "70000"}, "--max-clients 70000"},
		{[]string{"--client-buffer", "1MiB"}, "want at least --max-frame"},
		{[]string{"--client-buffer", "lots"}, `--client-buffer "lots"`},
		{[]string{"--frame-timeout", "0s"}, "--frame-timeout 0s"},
		{[]string{"--write-timeout", "-1s"}, "--write-timeout -1s"},
		{[]string{"--heavy-size", "2PiB"}, "--heavy-size 2PiB: over"},
		{[]string{"--heavy-inline", "0"}, "--heavy-inline 0"},
		{[]string{"--heavy-inline", "8MiB"}, "must fit a frame"},
		{[]string{"--durability", "maybe"}, "--durability"},
		{[]string{"--durability", "sync", "--state-dir", ""}, "--state-dir"},
		{[]string{"--plugin", "/no/such/worker"}, "no such file"},
		{[]string{"--plugin", filepath.Dir(exe)}, "not a regular file"},
		{[]string{"--plugin", exe + "@sha256:00"}, "not 64 hex digits"},
		{[]string{"--workers", "two"}, "invalid argument"},
		{[]string{"--http-allow-remote"}, "--http-allow-remote: needs --http"},
		{[]string{"--http-token-file", "/x"}, "--http-token-file: needs --http"},
		{[]string{"--pprof"}, "--pprof: needs --http"},
		{[]string{"--commit-log", "0"}, "--commit-log 0: want 1 to"},
		{[]string{"--gc-floor", "2PiB"}, "--gc-floor 2PiB: over"},
		{[]string{"--gc-floor", "lots"}, `--gc-floor "lots"`},
	} {
		_, err := parse(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}

func TestFlagsAccepted(t *testing.T) {
	exe, _ := os.Executable()
	f, err := parse(t, "--mode", "strict", "--workers", "3", "--durability", "none", "--state-dir", "",
		"--heavy-size", "0", "--plugin", exe, "--plugin", exe+"@sha256:"+strings.Repeat("a", 64), "--faults", "--socket", "/tmp/s.sock")
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := f.config()
	if cfg.Mode != cas.Strict || cfg.Workers != 3 || cfg.Durability != durable.None || cfg.HeavySize != 0 || cfg.Socket != "/tmp/s.sock" {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.Plugins) != 2 || cfg.Plugins[1].Pin != strings.Repeat("a", 64) {
		t.Errorf("plugins %+v", cfg.Plugins)
	}
	if cfg.Pool.Env[0] != "THEUS_DEMO_FAULTS=1" {
		t.Errorf("--faults: pool env %q", cfg.Pool.Env)
	}
	if cfg.GoroutinePerExecute {
		t.Error("the goroutine per execute by default")
	}
	if cfg.Pool.WorkerPoll != pool.DefaultWorkerPoll {
		t.Errorf("worker poll %s by default, want %s", cfg.Pool.WorkerPoll, pool.DefaultWorkerPoll)
	}
	for arg, want := range map[string]time.Duration{"0": -1, "20us": 20 * time.Microsecond, "1ms": time.Millisecond} {
		if f, err = parse(t, "--worker-poll", arg); err != nil {
			t.Fatal(err)
		}
		if cfg, _ = f.config(); cfg.Pool.WorkerPoll != want {
			t.Errorf("--worker-poll %s: pool's WorkerPoll %s, want %s", arg, cfg.Pool.WorkerPoll, want)
		}
	}
	if f, err = parse(t, "--write-timeout", "750ms", "--frame-timeout", "2s"); err != nil {
		t.Fatal(err)
	}
	if cfg, _ = f.config(); cfg.WriteTimeout != 750*time.Millisecond || cfg.FrameTimeout != 2*time.Second {
		t.Errorf("--write-timeout 750ms --frame-timeout 2s: %s and %s", cfg.WriteTimeout, cfg.FrameTimeout)
	}
	for _, tr := range []string{pool.TransportRing, pool.TransportSocket} {
		if f, err = parse(t, "--worker-transport", tr); err != nil {
			t.Fatal(err)
		}
		if cfg, err = f.config(); err != nil || cfg.Pool.Transport != tr {
			t.Errorf("--worker-transport %s: pool's Transport %q (%v)", tr, cfg.Pool.Transport, err)
		}
	}
	if f, err = parse(t, "--execute-path", "goroutine"); err != nil {
		t.Fatal(err)
	}
	if cfg, _ = f.config(); !cfg.GoroutinePerExecute {
		t.Error("--execute-path goroutine: the continuation path")
	}
}

// --worker-procs sets the workers' GOMAXPROCS, after anything inherited;
// 0 leaves Go's default.
func TestWorkerProcs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // the last GOMAXPROCS in the pool's env; "" for none
	}{
		{nil, "GOMAXPROCS=1"},
		{[]string{"--worker-procs", "4"}, "GOMAXPROCS=4"},
		{[]string{"--worker-procs", "0"}, ""},
	} {
		f, err := parse(t, append([]string{"--durability", "none"}, c.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := f.config()
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, kv := range cfg.Pool.Env {
			if strings.HasPrefix(kv, "GOMAXPROCS=") {
				got = kv
			}
		}
		if got != c.want {
			t.Errorf("%q: pool env %q, want %q last", c.args, cfg.Pool.Env, c.want)
		}
	}
}

// The edges of the checks: the largest --max-clients is accepted, one more
// is not; a --heavy-inline that is not a size is refused.
func TestFlagEdges(t *testing.T) {
	if _, err := parse(t, "--max-clients", strconv.Itoa(maxClients)); err != nil {
		t.Errorf("--max-clients %d: %v", maxClients, err)
	}
	if _, err := parse(t, "--max-clients", strconv.Itoa(maxClients+1)); err == nil {
		t.Errorf("--max-clients %d accepted", maxClients+1)
	}
	if _, err := parse(t, "--heavy-inline", "lots"); err == nil || !strings.Contains(err.Error(), `--heavy-inline "lots"`) {
		t.Errorf("--heavy-inline lots: %v", err)
	}
}

// --demo logs warnings only, unless --log-level says otherwise.
func TestDemoLogLevel(t *testing.T) {
	for _, c := range []struct {
		f    flags
		want zerolog.Level
	}{
		{flags{logFormat: "json"}, zerolog.InfoLevel},
		{flags{logFormat: "json", demo: true}, zerolog.WarnLevel},
		{flags{logFormat: "json", demo: true, logLevel: "debug"}, zerolog.DebugLevel},
	} {
		log, err := logger(c.f)
		if err != nil || log.GetLevel() != c.want {
			t.Errorf("%+v: level %v (%v), want %v", c.f, log.GetLevel(), err, c.want)
		}
	}
	if _, err := logger(flags{logFormat: "xml"}); err == nil {
		t.Error("--log-format xml accepted")
	}
}

// Without --log-format, a supervisor whose stderr is not a terminal (a
// pipe to a log shipper, a file) logs JSON, one object a line; a
// terminal gets the console format.
func TestLogFormatDefault(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stderr := os.Stderr
	os.Stderr = w
	log, err := logger(flags{})
	os.Stderr = stderr
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Str("k", "v").Msg("hello")
	w.Close()
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil || m["message"] != "hello" || m["k"] != "v" {
		t.Fatalf("a log line to a pipe: %q (%v), want a JSON object", line, err)
	}
}
