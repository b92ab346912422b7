package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/theus-run/theus/client"
)

// A listener off loopback needs --http-allow-remote and a token file
// only its owner can read; the start fails, with the reason, otherwise.
func TestHTTPRemoteRefused(t *testing.T) {
	exe, _ := os.Executable()
	dir := t.TempDir()
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("0123456789abcdef0123\n"), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"not loopback", []string{"--http", "0.0.0.0:0"}, "needs --http-allow-remote and a token"},
		{"no token", []string{"--http", "0.0.0.0:0", "--http-allow-remote"}, "needs --http-allow-remote and a token"},
		{"token readable by others", []string{"--http", "0.0.0.0:0", "--http-allow-remote", "--http-token-file", loose}, "lets others read it"},
		{"short token", []string{"--http", "127.0.0.1:0", "--http-token-file", short}, "at least 16 characters"},
		{"no port", []string{"--http", "127.0.0.1"}, "missing port"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A supervisor that starts when it must refuse would serve
			// forever: it is killed after a minute, and the test fails.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := dieWithTest(exec.CommandContext(ctx, exe, append([]string{"--workers", "1", "--socket", filepath.Join(t.TempDir(), "run", "s.sock"), "--durability", "none", "--heavy-size", "0"}, tt.args...)...))
			cmd.Env = append(os.Environ(), "THEUS_TEST_MAIN=1")
			cmd.WaitDelay = 5 * time.Second // its workers may hold the output open
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("%v: the supervisor started and served for a minute; want a failure saying %q", tt.args, tt.want)
			}
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("%v: %v, %s; want a failure saying %q", tt.args, err, out, tt.want)
			}
		})
	}
}

// /metrics of a running supervisor passes promlint and promtool, needs
// the token when one is set, and shows the counters theusctl status
// shows: one source.
func TestMetricsEndpoint(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("0123456789abcdef-secret\n"), 0o600)
	cmd, sock, stderr := startSupervisor(t, "--http", "127.0.0.1:0", "--http-token-file", token, "--pprof")
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("SIGTERM: %v\n%s", err, stderr)
		}
	}()
	url := pageURL(t, stderr)
	c, err := client.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for range 5 {
		if _, err := c.Exec(ctx, "counter.add", nil); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path, bearer string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", code)
	}
	if code, _ := get("debug/pprof/", "0123456789abcdef-secret"); code != http.StatusOK {
		t.Errorf("--pprof: /debug/pprof/ answered %d", code)
	}
	// --pprof records lock contention: the mutex profile samples.
	if code, body := get("debug/pprof/mutex?debug=1", "0123456789abcdef-secret"); code != http.StatusOK || !strings.Contains(body, "sampling period=100\n") {
		t.Errorf("--pprof: /debug/pprof/mutex answered %d, not sampling one lock in 100: %.200s", code, body)
	}
	code, body := get("metrics", "0123456789abcdef-secret")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		check := exec.Command(promtool, "check", "metrics")
		check.Stdin = strings.NewReader(body)
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("no promtool (Debian package prometheus): checked with promlint only")
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint64{"theus_commits_total": st.Commits, "theus_context_version": st.Version, "theus_journal_batches_total": st.Batches} {
		m := regexp.MustCompile(`(?m)^` + name + ` ([0-9.e+]+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no %s in /metrics", name)
			continue
		}
		if got, _ := strconv.ParseFloat(m[1], 64); uint64(got) != want {
			t.Errorf("%s = %s, theusctl status says %d", name, m[1], want)
		}
	}
	if !strings.Contains(body, `theus_executes_total{outcome="ok",process="counter.add"} 5`) {
		t.Errorf("/metrics does not count the 5 executes of counter.add")
	}
}
