package supervisor

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/pool"
)

// TestStartFailureReleasesEverything: a Start that fails late (the socket
// cannot be made) stops the workers it started, closes the state file
// (a second Start on it works) and leaves no goroutine behind.
func TestStartFailureReleasesEverything(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Plugins: testPlugins(t), Workers: 2, StateDir: filepath.Join(dir, "state"),
		Durability: durable.Sync, Pool: pool.Config{Env: quickExit()}, Log: zerolog.Nop()}
	bad := cfg
	bad.Socket = filepath.Join(notADir, "s.sock")
	before := children(t)
	if _, err := Start(bad); err == nil {
		t.Fatal("Start with a socket under a regular file succeeded")
	}
	if now := children(t); now > before {
		t.Errorf("%d worker processes left after a failed Start", now-before)
	}
	goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := Start(cfg) // the state file's lock was released
	if err != nil {
		t.Fatalf("Start after a failed one: %v", err)
	}
	s.Shutdown(t.Context())
}

// children counts the live child processes of the test.
func children(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && f[0] != "Z" {
			n++
		}
	}
	return n
}
