package supervisor

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/protocol"
)

// TestDrainRepliesShuttingDown: at the end of a drain, an execute
// canceled in flight and one read but not started both fail with
// shutting_down, not with the connection's EOF.
func TestDrainRepliesShuttingDown(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.DrainTimeout = 2 * time.Second; c.MaxPerClient = 1 })
	c := h.dial(t)
	ctx := context.Background()
	errs := make(chan error, 2)
	go func() {
		_, err := c.Exec(ctx, "fault.sleep", map[string]int{"ms": 60000})
		errs <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st, err := h.dial(t).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Workers[0].InFlight == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sleep did not start")
		}
	}
	go func() {
		_, err := c.Exec(ctx, "noop", nil) // waits behind the sleep (MaxPerClient 1)
		errs <- err
	}()
	go h.s.Shutdown(ctx)
	for range 2 {
		if err := <-errs; !errors.Is(err, protocol.ErrShuttingDown) {
			t.Errorf("an execute at the end of the drain: %v, want shutting_down", err)
		}
	}
}

// TestSIGTERMWithPipelinedGets: a client that pipelined thousands of
// Gets over a large subtree, then left or stopped reading, does not keep
// a draining supervisor running: what it sent and was not answered is
// dropped, the supervisor exits within its drain bounds, and it keeps the
// state file locked until then, so a second supervisor cannot start
// beside it.
func TestSIGTERMWithPipelinedGets(t *testing.T) {
	for _, tt := range []struct {
		name  string
		leave bool // close the connection; else keep it open, unread
	}{
		{name: "client gone", leave: true},
		{name: "client not reading"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			env := []string{"THEUS_TEST_STATE=" + state, "THEUS_TEST_DRAIN=1s"}
			first, sock, c := supervisorProcessEnv(t, env...)
			if _, err := c.Exec(context.Background(), "test.fill", fillArgs{N: 20000, Size: 100}); err != nil {
				t.Fatal(err)
			}
			c.Close()
			var frames []byte
			for i := range 20000 {
				frames, _ = protocol.AppendFrame(frames, &protocol.Get{ID: uint64(i + 1), Path: "domain.big"})
			}
			nc, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
			n, _ := nc.Write(frames) // as much as the socket takes before the supervisor's replies back up
			if n < 64<<10 {
				t.Fatalf("sent only %d bytes of Gets", n)
			}
			if tt.leave {
				nc.Close()
			}
			exited := make(chan time.Time, 1)
			go func() { first.Wait(); exited <- time.Now() }()
			first.Process.Signal(syscall.SIGTERM)
			termed := time.Now()

			up, stopSecond := startWhenUnlocked(t, env)
			defer stopSecond()
			select {
			case gone := <-exited:
				if d := gone.Sub(termed); d > 15*time.Second {
					t.Errorf("the first supervisor took %s to exit after SIGTERM, with --drain-timeout 1s", d.Round(time.Millisecond))
				}
				if up.Before(gone.Add(-time.Second)) {
					t.Errorf("a second supervisor served the state %s before the first exited", gone.Sub(up).Round(time.Millisecond))
				}
				if code := first.ProcessState.ExitCode(); code != 0 {
					t.Errorf("the first supervisor exited %d", code)
				}
				t.Logf("the first supervisor exited %s after SIGTERM; the second came up %s after that", gone.Sub(termed).Round(time.Millisecond), up.Sub(gone).Round(time.Millisecond))
			case <-time.After(60 * time.Second):
				t.Fatalf("the first supervisor still runs 60 s after SIGTERM; a second one serves its state since %s after SIGTERM", up.Sub(termed).Round(time.Millisecond))
			}
		})
	}
}

// startWhenUnlocked starts supervisors on the state in env until one
// does not find it locked, and returns when it came up and how to stop it.
func startWhenUnlocked(t *testing.T, env []string) (time.Time, func()) {
	t.Helper()
	exe, _ := os.Executable()
	sock := filepath.Join(t.TempDir(), "run", "s.sock")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = supervisorEnv(t, sock, env...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if up, ok := waitUp(sock, exited); ok {
			return up, func() { cmd.Process.Signal(syscall.SIGTERM); <-exited }
		}
		if code := cmd.ProcessState.ExitCode(); code != 3 {
			t.Fatalf("a second supervisor exited %d, want 3 (state locked) or to run", code)
		}
	}
	t.Fatal("no second supervisor came up in 60 s")
	return time.Time{}, nil
}

// waitUp waits until a client can connect to sock (true) or exited is
// closed (false).
func waitUp(sock string, exited <-chan struct{}) (time.Time, bool) {
	for {
		select {
		case <-exited:
			return time.Time{}, false
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := client.Dial(sock); err == nil {
			c.Close()
			return time.Now(), true
		}
	}
}
