package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/internal/outbuf"
	"github.com/theus-run/theus/internal/race"
)

// TestMain runs main when a test starts this binary as the supervisor
// (THEUS_TEST_MAIN=1); its workers, started the same way, become workers
// in main.
func TestMain(m *testing.M) {
	if os.Getenv("THEUS_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	race.SkipExitSleep() // this binary, started as the supervisor and its workers
	os.Exit(m.Run())
}

// startSupervisor starts this binary as theus-supervisor with args and waits
// until it serves its socket.
// dieWithTest makes cmd, a supervisor the test starts, die with the test
// process (SIGKILL when it ends): a test killed at its timeout, or by a
// mutation run, leaves no supervisor serving behind it. (Its workers die
// with it.)
func dieWithTest(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func startSupervisor(t *testing.T, args ...string) (*exec.Cmd, string, *outbuf.Buffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "s.sock")
	cmd := dieWithTest(exec.Command(exe, append([]string{"--workers", "1", "--socket", sock, "--state-dir", filepath.Join(dir, "state"), "--heavy-size", "0", "--log-format", "json"}, args...)...))
	cmd.Env = append(os.Environ(), "THEUS_TEST_MAIN=1")
	stderr := &outbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := client.Dial(sock)
		if err == nil {
			c.Close()
			return cmd, sock, stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("the supervisor did not come up: %v\n%s", err, stderr)
		}
	}
}

// TestSIGHUPIgnored: SIGHUP is logged and ignored (it used to kill the
// supervisor with no drain, leaving its socket behind); SIGTERM still
// drains and exits 0.
func TestSIGHUPIgnored(t *testing.T) {
	cmd, sock, stderr := startSupervisor(t)
	cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), "SIGHUP ignored"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cmd.Process.Signal(syscall.SIGTERM)
			err := cmd.Wait()
			t.Fatalf("no log line for SIGHUP (exit: %v)\n%s", err, stderr)
		}
	}
	c, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Exec(context.Background(), "counter.add", nil); err != nil {
		t.Fatalf("after SIGHUP: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM after SIGHUP: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestSIGHUPReloadsAudit: with --audit, SIGHUP reloads the recipe; one
// that does not load is logged with file:line and the old one stays.
func TestSIGHUPReloadsAudit(t *testing.T) {
	recipe := filepath.Join(t.TempDir(), "audit.yaml")
	write := func(text string) {
		if err := os.WriteFile(recipe+".tmp", []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(recipe+".tmp", recipe); err != nil {
			t.Fatal(err)
		}
	}
	write("process_recipes:\n  counter.add: {inputs: [{field: by, max: 5, level: A}]}\n")
	cmd, sock, stderr := startSupervisor(t, "--audit", recipe)
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("SIGTERM: %v\n%s", err, stderr)
		}
	}()
	c, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Exec(ctx, "counter.add", map[string]int{"by": 9}); err == nil || !strings.Contains(err.Error(), "audit_abort") {
		t.Fatalf("recipe 1 let by=9 through: %v", err)
	}
	waitRecipe := func(gen uint64) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			st, err := c.AuditStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Recipe == gen {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("recipe %d, want %d\n%s", st.Recipe, gen, stderr)
			}
		}
	}
	write("process_recipes:\n  counter.add: {inputs: [{field: by, max: 50, level: A}]}\n")
	cmd.Process.Signal(syscall.SIGHUP)
	waitRecipe(2)
	if _, err := c.Exec(ctx, "counter.add", map[string]int{"by": 9}); err != nil {
		t.Fatalf("recipe 2 refused by=9: %v", err)
	}
	write("process_recipes:\n  counter.add: {inputs: [{field: by, mux: 50}]}\n")
	cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), `audit.yaml:2: unknown key \"mux\"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the bad recipe\n%s", stderr)
		}
	}
	waitRecipe(2)
	if _, err := c.Exec(ctx, "counter.add", map[string]int{"by": 60}); err == nil {
		t.Fatal("the old recipe is not in force after a bad reload")
	}
}
