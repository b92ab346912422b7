package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/internal/outbuf"
)

// supervisorFor runs the built theus-supervisor on a socket of its own
// until the test ends, and returns the socket.
func supervisorFor(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "theus.sock")
	cmd := exec.Command(filepath.Join(binDir, "theus-supervisor"), "--workers", "2", "--socket", sock, "--state-dir", filepath.Join(dir, "state"), "--heavy-size", "0", "--log-format", "json")
	var stderr outbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("theus-supervisor: %v\n%s", err, stderr.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := client.Dial(sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("the supervisor did not come up\n%s", stderr.String())
		}
	}
}

// tmux runs a command in a tmux server of the test's own, on a 140x40
// pseudo-terminal that tmux emulates: what the test reads is the screen
// a person would see.
type tmux struct {
	t    *testing.T
	sock string
}

func newTmux(t *testing.T, command string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("no tmux on PATH (Debian package tmux; .ci/run installs it): theusctl top is not tested in a terminal")
	}
	m := &tmux{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	m.run("-f", "/dev/null", "new-session", "-d", "-x", "140", "-y", "40", "-s", "top", command)
	t.Cleanup(func() { exec.Command("tmux", "-S", m.sock, "kill-server").Run() })
	return m
}

func (m *tmux) run(args ...string) string {
	m.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	if err != nil {
		m.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen is the pane's text now.
func (m *tmux) screen() string { return m.run("capture-pane", "-p", "-t", "top") }

// waitScreen waits until ok accepts the screen.
func (m *tmux) waitScreen(what string, ok func(string) bool) string {
	m.t.Helper()
	var s string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if s = m.screen(); ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the screen never showed %s:\n%s", what, s)
		}
	}
}

// TestTopInTerminal runs theusctl top in a terminal (tmux) against a
// supervisor under load: it draws the processes with their rates and
// latencies and the workers, redraws as the numbers change, and on q
// and on Ctrl-C exits 0 and gives the screen back as it was.
func TestTopInTerminal(t *testing.T) {
	sock := supervisorFor(t)
	c, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // after the load stops
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	wg.Go(func() {
		for ctx.Err() == nil {
			if _, err := c.Exec(ctx, "counter.add", nil); err != nil && ctx.Err() == nil {
				t.Errorf("load: %v", err)
				return
			}
		}
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A process row: the name, a rate that is not zero, no errors, p50,
	// p99, the total.
	row := regexp.MustCompile(`(?m)^counter\.add +[1-9][0-9,.]* +0\.00 +[0-9.]+(µs|ms|s) +[0-9.]+(µs|ms|s) +[0-9,]+$`)
	worker := regexp.MustCompile(`(?m)^[01] +[0-9]+ +ready `)
	version := regexp.MustCompile(`version ([0-9,]+)`)
	for _, key := range []string{"q", "C-c"} {
		t.Run(key, func(t *testing.T) {
			m := newTmux(t, "echo before top; THEUSCTL_TEST_MAIN=1 "+exe+" top --socket "+sock+" --every 200ms; echo top exited $?; sleep 60")
			first := m.waitScreen("the processes and workers", func(s string) bool { return row.MatchString(s) && worker.MatchString(s) })
			if strings.Contains(first, "before top") {
				t.Errorf("top does not use the alternate screen:\n%s", first)
			}
			t.Logf("screen:\n%s", first)
			v0 := version.FindStringSubmatch(first)
			m.waitScreen("a newer version", func(s string) bool {
				v := version.FindStringSubmatch(s)
				return v0 != nil && v != nil && v[1] != v0[1] && row.MatchString(s)
			})
			m.run("send-keys", "-t", "top", key)
			after := m.waitScreen("top's exit", func(s string) bool { return strings.Contains(s, "top exited") })
			if !strings.Contains(after, "top exited 0") || !strings.Contains(after, "before top") || strings.Contains(after, "PROCESS") {
				t.Errorf("after %s the screen is not given back as it was, or top failed:\n%s", key, after)
			}
		})
	}
}
