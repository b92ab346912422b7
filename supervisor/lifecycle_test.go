package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/protocol"
)

// TestSupervisorSIGKILLTakesWorkers: a supervisor killed by SIGKILL under
// load leaves no worker behind after 1 s.
func TestSupervisorSIGKILLTakesWorkers(t *testing.T) {
	cmd, _, c := supervisorProcess(t)
	defer c.Close()
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, w := range st.Workers {
		pids = append(pids, int(w.PID))
	}
	// Load: sleeping dispatches keep every worker busy when the supervisor dies.
	for range 8 {
		go c.Exec(ctx, "fault.sleep", map[string]int{"ms": 10000})
	}
	go func() {
		for range 1000 {
			if _, err := c.Exec(ctx, "counter.add", nil); err != nil {
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()
	for _, pid := range pids {
		for alive(pid) {
			if time.Since(killed) > time.Second {
				t.Fatalf("worker %d alive %s after its supervisor was SIGKILLed", pid, time.Since(killed))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("%d workers gone within %s", len(pids), time.Since(killed).Round(time.Millisecond))
}

// TestSIGTERMDrains: SIGTERM lets in-flight executes finish, refuses new
// ones, and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	cmd, sock, c := supervisorProcess(t)
	defer c.Close()
	res := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "fault.sleep", map[string]int{"ms": 300})
		res <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-res; err != nil {
		t.Fatalf("the execute in flight was not drained: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestShutdownRefusesNewExecutes checks the in-process side of draining.
func TestShutdownRefusesNewExecutes(t *testing.T) {
	h := start(t, 1, nil)
	go h.s.Shutdown(context.Background())
	for !h.s.draining.Load() {
		time.Sleep(time.Millisecond)
	}
	rep := h.s.Execute(context.Background(), &protocol.Execute{Process: "noop"})
	if !errors.Is(rep.Err, protocol.ErrShuttingDown) {
		t.Fatalf("err = %v", rep.Err)
	}
}

// TestOversizedClientFrameDisconnects: a client that sends a frame over
// the limit is disconnected before the supervisor allocates for it, and
// the supervisor keeps serving others.
func TestOversizedClientFrameDisconnects(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.MaxFrame = 1 << 16 })
	for name, frame := range map[string][]byte{
		"oversized": {0x7f, 0xff, 0xff, 0xff, byte(protocol.KindExecute)},
		"garbage":   {0, 0, 0, 3, byte(protocol.KindExecute), 0xc1, 0xc1},
		"unknown":   {0, 0, 0, 2, 200, 0x90},
		"wrong way": append([]byte{0, 0, 0, 3, byte(protocol.KindResult)}, 0x91, 0x01),
	} {
		nc, err := net.Dial("unix", h.sock)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(frame)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := nc.Read(make([]byte, 64))
		nc.Close()
		if n != 0 || err == nil {
			t.Errorf("%s: read %d bytes, err %v: want the connection closed", name, n, err)
		}
	}
	if _, err := h.dial(t).Exec(context.Background(), "noop", nil); err != nil {
		t.Fatalf("supervisor hurt by bad clients: %v", err)
	}
}

// TestNoLeaks: a supervisor's whole life, with crashes and timeouts,
// leaves no descriptor open (goroutines are checked by goleak in TestMain).
func TestNoLeaks(t *testing.T) {
	cycle := func() {
		h := startNoCleanup(t)
		c, err := client.Dial(h.sock)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		c.Exec(ctx, "counter.add", nil)
		c.Exec(ctx, "fault.crash", nil)
		c.Do(ctx, client.Request{Process: "fault.sleep", Args: map[string]int{"ms": 2000}, Timeout: 50 * time.Millisecond})
		c.Exec(ctx, "fault.undeclared", nil)
		c.Close()
		h.s.Shutdown(ctx)
	}
	cycle() // warms up what lives for the process (the poller)
	before := openFDs(t)
	cycle()
	if after := openFDs(t); after != before {
		t.Fatalf("%d descriptors open before, %d after", before, after)
	}
}

// supervisorProcess starts the test binary as a supervisor in its own
// process and returns it, its socket and a client connected to it.
func supervisorProcess(t *testing.T) (*exec.Cmd, string, *client.Client) {
	return supervisorProcessEnv(t)
}

// supervisorProcessEnv is supervisorProcess with env added to the
// process's (see runAsSupervisor).
func supervisorProcessEnv(t *testing.T, env ...string) (*exec.Cmd, string, *client.Client) {
	t.Helper()
	exe, _ := os.Executable()
	sock := filepath.Join(t.TempDir(), "run", "s.sock")
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = supervisorEnv(t, sock, env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := client.Dial(sock)
		if err == nil {
			return cmd, sock, c
		}
		if time.Now().After(deadline) {
			t.Fatalf("supervisor did not come up: %v", err)
		}
	}
}

// TestOversizedReplyIsAnError: a Get whose reply does not fit a frame
// gets an error reply, and the connection keeps working.
func TestOversizedReplyIsAnError(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.MaxFrame = 16 << 10 })
	c := h.dial(t)
	ctx := context.Background()
	for i := range 400 {
		if _, err := c.Exec(ctx, "bank.open", map[string]any{"account": fmt.Sprintf("account-with-a-long-name-%04d", i), "balance": 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Get(ctx, "domain.accounts"); !errors.Is(err, protocol.ErrBadRequest) {
		t.Fatalf("oversized get: %v, want bad_request", err)
	}
	if _, err := c.Get(ctx, "domain.accounts.account-with-a-long-name-0001"); err != nil {
		t.Fatalf("the connection did not survive: %v", err)
	}
	// A request too big to send fails alone; the client stays usable.
	if _, err := c.Exec(ctx, "noop", json.RawMessage(`"`+strings.Repeat("x", 20<<20)+`"`)); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("oversized request: %v", err)
	}
	if _, err := c.Exec(ctx, "noop", nil); err != nil {
		t.Fatalf("after a refused request: %v", err)
	}
}

// TestMaxPerClient: a client pipelining past MaxPerClient executes is
// slowed down (not refused): the supervisor stops reading it meanwhile.
func TestMaxPerClient(t *testing.T) {
	h := start(t, 2, func(c *Config) { c.MaxPerClient = 2 })
	c := h.dial(t)
	var wg sync.WaitGroup
	start := time.Now()
	for range 4 {
		wg.Go(func() {
			if _, err := c.Exec(context.Background(), "fault.sleep", map[string]int{"ms": 200}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("4 sleeps of 200 ms, at most 2 at a time, took %s", d)
	}
	// Another client is not held up by the first one's limit.
	if _, err := h.dial(t).Exec(context.Background(), "noop", nil); err != nil {
		t.Fatal(err)
	}
}

// TestGetMissingPath: a Get of a path with nothing at or under it is the
// error not_found, naming the path, on the wire and through the client;
// the connection goes on.
func TestGetMissingPath(t *testing.T) {
	h := start(t, 1, nil)
	if g := h.s.Get(&protocol.Get{ID: 9, Path: "domain.missing"}); g.ID != 9 || len(g.Entries) != 0 || g.Err == nil ||
		g.Err.Code != protocol.CodeNotFound || g.Err.Path != "domain.missing" {
		t.Fatalf("reply %+v, error %+v: want not_found for domain.missing", g, g.Err)
	}
	c := h.dial(t)
	ctx := context.Background()
	if v, err := c.Get(ctx, "domain.missing"); !errors.Is(err, protocol.ErrNotFound) {
		t.Fatalf("get of a missing path: %+v, %v; want not_found", v, err)
	}
	if _, err := c.Exec(ctx, "counter.add", map[string]int{"by": 2}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "domain"); err != nil || len(v.Entries) != 1 || string(v.Entries[0].Value) != "2" {
		t.Fatalf("get domain: %+v, %v", v, err)
	}
}
