package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/internal/testprocs"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/worker"
)

// TestMain makes the test binary a worker when a pool launches it (the
// tests' workers are testWorker; BenchmarkStart spawns this binary), and a
// whole supervisor when a test starts it as one (THEUS_TEST_SUPERVISOR).
func TestMain(m *testing.M) {
	if worker.Launched() {
		testprocs.Main()
	}
	if benchPeer() {
		os.Exit(0)
	}
	if sock := os.Getenv("THEUS_TEST_SUPERVISOR"); sock != "" {
		os.Exit(runAsSupervisor(sock))
	}
	if err := startGCFloor(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(runTests(m))
}

// runTests runs the tests, then looks for leaked goroutines as
// goleak.VerifyTestMain does, and removes the test worker.
func runTests(m *testing.M) int {
	defer removeTestWorker()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
			return 1
		}
	}
	return code
}

// runAsSupervisor serves sock with the state in $THEUS_TEST_STATE (none
// if unset), the workflows in $THEUS_TEST_FLUX (none if unset) and a drain of $THEUS_TEST_DRAIN (a duration; the default if
// unset) until SIGTERM, with $THEUS_TEST_WORKER's workers (this binary's
// if unset). It exits 3 if the state is locked.
func runAsSupervisor(sock string) int {
	exe, _ := os.Executable()
	if w := os.Getenv(testWorkerEnv); w != "" {
		exe = w // the test worker, as the test that started this one says
	}
	drain, _ := time.ParseDuration(os.Getenv("THEUS_TEST_DRAIN"))
	s, err := Start(Config{Plugins: []pool.Plugin{{Command: []string{exe}}}, Workers: 2, Socket: sock, StateDir: os.Getenv("THEUS_TEST_STATE"), DrainTimeout: drain, Flux: os.Getenv("THEUS_TEST_FLUX"),
		Pool: pool.Config{Env: quickExit()}, Log: zerolog.New(os.Stderr).Level(zerolog.WarnLevel)})
	if errors.Is(err, durable.ErrLocked) {
		return 3
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	s.Serve(ctx)
	return 0
}

type harness struct {
	s    *Supervisor
	sock string
}

func start(t *testing.T, workers int, tune func(*Config)) *harness {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "theus.sock")
	cfg := Config{
		Plugins: testPlugins(t), Workers: workers, Socket: sock,
		Log:  zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
		Pool: pool.Config{RestartBackoff: 20 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond, Env: quickExit()},
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		pids := s.WorkerPIDs()
		if n := s.Stats().LateWakes; n != 0 {
			t.Errorf("%d lost wake-ups mended late (by a heartbeat or at a deadline): a dispatch was published to a worker's ring and its wake-up never came", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		for _, pid := range pids {
			if alive(pid) {
				t.Errorf("worker %d alive after shutdown", pid)
			}
		}
	})
	return &harness{s: s, sock: sock}
}

func (h *harness) dial(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.Dial(h.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(es)
}

// startNoCleanup starts a supervisor (with no socket server) that the
// test shuts down itself.
func startNoCleanup(t *testing.T) *harness {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "s.sock")
	s, err := Start(Config{Plugins: testPlugins(t), Workers: 2, Socket: sock, Log: zerolog.Nop(),
		Pool: pool.Config{RestartBackoff: 20 * time.Millisecond, Env: quickExit()}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(context.Background())
	return &harness{s: s, sock: sock}
}

// quickExit keeps a race-enabled worker from sleeping 1 s at exit, which
// every graceful stop would pay (race.QuickExit).
func quickExit() []string { return []string{race.QuickExit()} }
