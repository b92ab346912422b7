package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/durable"
)

// A state file that cannot be used stops the start with ExitState (3),
// apart from every other error (1), so that a service manager can tell
// "do not restart me, look at the state" from a crash: one held by
// another supervisor, and one that is not a state file.
func TestStateExitStatus(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, stateDir string) (*exec.Cmd, string) {
		sock := filepath.Join(t.TempDir(), "run", "s.sock")
		cmd := dieWithTest(exec.Command(exe, "--workers", "1", "--socket", sock, "--state-dir", stateDir, "--heavy-size", "0", "--log-format", "json"))
		cmd.Env = append(os.Environ(), "THEUS_TEST_MAIN=1")
		return cmd, sock
	}
	// wantExit runs cmd to its end, under a minute, and checks its status
	// and its stderr.
	wantExit := func(t *testing.T, cmd *exec.Cmd, want string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c := dieWithTest(exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...))
		c.Env, c.WaitDelay = cmd.Env, 5*time.Second
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != ExitState || !strings.Contains(string(out), want) {
			t.Fatalf("exit %v (%v), want status %d saying %q:\n%s", err, ctx.Err(), ExitState, want, out)
		}
	}

	t.Run("held by another supervisor", func(t *testing.T) {
		dir := t.TempDir()
		first, sock := run(t, dir)
		if err := first.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			first.Process.Kill()
			first.Wait()
		}()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, err := client.Dial(sock); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the first supervisor did not come up")
			}
		}
		second, _ := run(t, dir)
		wantExit(t, second, "locked")
	})
	t.Run("not a state file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, durable.FileName), []byte(strings.Repeat("not a theus state file\n", 100)), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd, _ := run(t, dir)
		wantExit(t, cmd, "corrupt")
	})
}
