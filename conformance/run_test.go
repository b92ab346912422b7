package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"

	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/internal/testcache"
)

const python = "/usr/bin/python3"

// needPython skips the test where the Python side cannot run.
func needPython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("conformance: %s is missing (apt-get install python3 python3-msgpack): %v", python, err)
	}
	if out, err := exec.Command(python, "-c", "import msgpack").CombinedOutput(); err != nil {
		t.Skipf("conformance: the Python msgpack module is missing (apt-get install python3-msgpack): %v: %s", err, out)
	}
}

// buildSupervisor builds theus-supervisor into dir and returns its path.
func buildSupervisor(t *testing.T, dir string) string {
	t.Helper()
	testcache.Touch(t) // go build reads the module; python3 the programs here
	// go test puts its own GOROOT/bin first in PATH
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build the supervisor: %v", err)
	}
	// Built as this binary was: with -race, the build reuses the packages
	// the test run compiled, and the supervisor, started next, exits
	// without the race runtime's sleep.
	t.Setenv(race.QuickExitEnv())
	args := append(append([]string{"build"}, race.BuildFlags()...), "-o", dir+string(filepath.Separator), "./cmd/theus-supervisor")
	cmd := exec.Command(goBin, args...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "theus-supervisor")
}

// copyScript copies a Python script of this directory into dir, executable.
func copyScript(t *testing.T, name, dir string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

type supervisor struct {
	cmd    *exec.Cmd
	socket string
	events string
	log    string
	done   chan error
}

// startSupervisor starts bin with args on a socket in a new directory; it
// is stopped with SIGTERM (and must exit 0) when the test ends.
func startSupervisor(t *testing.T, bin string, args ...string) *supervisor {
	t.Helper()
	dir := t.TempDir()
	s := &supervisor{
		socket: filepath.Join(dir, "sock", "theus.sock"),
		events: filepath.Join(dir, "events.jsonl"),
		log:    filepath.Join(dir, "supervisor.log"),
		done:   make(chan error, 1),
	}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--socket", s.socket, "--state-dir", filepath.Join(dir, "state"),
		"--log-format", "json"}, args...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), "CONFORM_EVENTS="+s.events)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.done:
			if err != nil && !t.Failed() {
				t.Errorf("supervisor after SIGTERM: %v (want exit 0)", err)
			}
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			t.Errorf("supervisor did not exit within 30 s of SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			t.Logf("supervisor log (last 4 KiB):\n%s", tail(b, 4096))
		}
	})
	return s
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

type checkLine struct {
	Check string `json:"check"`
	OK    bool   `json:"ok"`
}

// runClient runs theus_client.py against s and returns its checks by name;
// every check must pass and every name in want must be among them.
func runClient(t *testing.T, client string, s *supervisor, scenario string, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, client, "--socket", s.socket,
		"--scenario", scenario, "--backup-dir", t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	seen := map[string]bool{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c checkLine
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil || c.Check == "" {
			t.Errorf("client printed a line that is not a check: %q", sc.Text())
			continue
		}
		seen[c.Check] = true
		if !c.OK {
			t.Errorf("check failed: %s", sc.Text())
		}
	}
	if runErr != nil {
		t.Errorf("client (%s): %v\nstderr:\n%s", scenario, runErr, stderr.String())
	}
	for _, name := range want {
		if !seen[name] {
			t.Errorf("check %q did not run", name)
		}
	}
}

type event struct {
	Event    string  `json:"event"`
	PID      int     `json:"pid"`
	Op       int     `json:"op"`
	Slab     int     `json:"slab"`
	Running  bool    `json:"running"`
	Dispatch int     `json:"dispatch"`
	Msg      string  `json:"msg"`
	T        float64 `json:"t"`
}

func readEvents(t *testing.T, path string) []event {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the worker wrote no events: %v", err)
	}
	var evs []event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

var (
	commonChecks = []string{"ping", "status_fields", "get_missing_not_found", "get_path_space",
		"get_path_257_bytes", "get_path_256_bytes", "get_path_33_segments", "unknown_process",
		"op_id_128", "op_id_129", "int64_encoded_id", "in_order_replies", "request_id_zero",
		"backup", "backup_relative"}
	badFrameChecks = []string{"bad_frame_zero_length", "bad_frame_over_limit", "bad_frame_map_body",
		"bad_frame_short_tuple", "bad_frame_trailing_bytes", "bad_frame_wrong_kind",
		"bad_frame_str_for_bin", "bad_frame_nil_for_bin", "bad_frame_negative_id",
		"bad_frame_int_for_str", "bad_frame_client_sends_pong"}
	pluginChecks = []string{"plugin_processes", "echo_bytes", "echo_no_args", "bad_args_not_json",
		"add_commits", "get_subtree", "template_arg_missing", "op_id_duplicate", "op_id_conflict",
		"pipelined", "delete", "append", "misbehave_write_outside", "misbehave_read_outside",
		"misbehave_result_not_json", "misbehave_value_not_json", "misbehave_bad_op",
		"misbehave_own_code", "misbehave_nothing_committed", "alloc_grant", "alloc_size_zero",
		"alloc_too_big", "alloc_freed", "long_process_survives", "cancel_timeout",
		"cancel_client_gone", "ignored_cancel_killed", "worker_crashed", "workers_back"}
	demoChecks = []string{"demo_processes", "noop", "counter_add", "demo_op_id_conflict",
		"demo_pipelined", "demo_counter_value", "bank", "demo_bad_args", "demo_status_counters"}
)

// TestConformance runs the Python client and worker, written from
// docs/PROTOCOL.md alone, against the supervisor: with the Python worker
// as its plugin (HEAVY zone on, then off), and with the default demo worker.
func TestConformance(t *testing.T) {
	needPython(t)
	dir := t.TempDir()
	bin := buildSupervisor(t, dir)
	client := copyScript(t, "theus_client.py", dir)
	worker := copyScript(t, "theus_worker.py", dir)

	t.Run("plugin", func(t *testing.T) {
		s := startSupervisor(t, bin, "--workers", "2", "--plugin", worker, "--heavy-size", "64MiB")
		runClient(t, client, s, "plugin", append(append(append([]string{}, commonChecks...), badFrameChecks...), pluginChecks...))
		checkWorkerEvents(t, readEvents(t, s.events))
	})
	t.Run("noheavy", func(t *testing.T) {
		s := startSupervisor(t, bin, "--workers", "1", "--plugin", worker, "--heavy-size", "0")
		runClient(t, client, s, "noheavy", []string{"noheavy_status", "noheavy_add", "noheavy_alloc"})
		for _, e := range readEvents(t, s.events) {
			if e.Event == "mapped" || e.Event == "packet" {
				t.Errorf("HEAVY zone off, yet the worker saw %+v", e)
			}
		}
	})
	t.Run("demo", func(t *testing.T) {
		s := startSupervisor(t, bin, "--workers", "2", "--heavy-size", "64MiB")
		runClient(t, client, s, "demo", append(append(append([]string{}, commonChecks...), badFrameChecks...), demoChecks...))
	})
}

// checkWorkerEvents checks what the Python workers saw of the plugin
// scenario: the slab handshake, Pongs while a long process ran, Cancels
// answered, and no protocol error.
func checkWorkerEvents(t *testing.T, evs []event) {
	t.Helper()
	welcomeSlab := map[int]int{} // pid -> the Welcome's slab
	mapped := map[int]int{}      // pid -> the Mapped's slab
	rw := map[int]int{}          // pid -> slab of an op 1 packet
	pongs := map[int]int{}       // pid -> Pongs sent while a process ran
	var ro, unmap, cancels, canceled int
	for _, e := range evs {
		switch e.Event {
		case "welcome":
			welcomeSlab[e.PID] = e.Slab
		case "mapped":
			mapped[e.PID] = e.Slab
		case "packet":
			switch e.Op {
			case 1:
				rw[e.PID] = e.Slab
			case 2:
				ro++
			case 3:
				unmap++
			}
		case "pong_while_running":
			pongs[e.PID]++
		case "cancel":
			if e.Running {
				cancels++
			}
		case "sleep_canceled":
			canceled++
		case "die":
			t.Errorf("worker %d gave up: %s", e.PID, e.Msg)
		}
	}
	if len(welcomeSlab) < 2 {
		t.Errorf("%d workers welcomed, want at least 2", len(welcomeSlab))
	}
	for pid, slab := range welcomeSlab {
		if slab == 0 {
			t.Errorf("worker %d: Welcome names no slab with the HEAVY zone on", pid)
			continue
		}
		// a worker killed right after its Welcome may not have logged more
		if m, ok := mapped[pid]; ok && (m != slab || rw[pid] != slab) {
			t.Errorf("worker %d: Welcome slab %d, read-write packet slab %d, Mapped %d", pid, slab, rw[pid], m)
		}
	}
	if ro == 0 {
		t.Errorf("no read-only slab packet (op 2) reached a worker")
	}
	if unmap == 0 {
		t.Errorf("no unmap packet (op 3) reached a worker, though workers were replaced")
	}
	most := 0
	for _, n := range pongs {
		most = max(most, n)
	}
	if most < 4 {
		t.Errorf("at most %d Pongs from one worker while its process ran (a 6.5 s sleep, Pings every 1 s)", most)
	}
	// the timeout and the client that went away; the ignored Cancel is not answered
	if cancels < 3 || canceled < 2 {
		t.Errorf("%d Cancels of running dispatches, %d processes stopped by one; want 3 and 2", cancels, canceled)
	}
	if t.Failed() {
		b, _ := json.Marshal(evs)
		t.Logf("events: %s", tail(b, 8192))
	}
}
