package clustertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/supervisor"
	"github.com/theus-run/theus/worker"
)

// TestMain makes the test binary a worker when a pool launches it.
func TestMain(m *testing.M) {
	if worker.Launched() {
		worker.Main(demo.Processes()...)
	}
	race.SkipExitSleep() // this binary, started as the workers
	os.Exit(m.Run())
}

type harness struct {
	s    *supervisor.Supervisor
	sock string
	cfg  supervisor.Config
}

// start starts a supervisor of workers workers on a socket, tuned by
// tune, and shuts it down when the test ends.
func start(t *testing.T, workers int, tune func(*supervisor.Config)) *harness {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "run", "theus.sock")
	cfg := supervisor.Config{
		Plugins: []pool.Plugin{{Command: []string{exe}}}, Workers: workers, Socket: sock,
		Log:  zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
		Pool: pool.Config{RestartBackoff: 20 * time.Millisecond, MaxRestartBackoff: 200 * time.Millisecond},
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := supervisor.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{s: s, sock: sock, cfg: cfg}
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
