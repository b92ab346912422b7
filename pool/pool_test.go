package pool

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
)

// TestMain makes the test binary a worker when the pool launches it.
func TestMain(m *testing.M) {
	if os.Getenv("THEUS_TEST_BAD_WORKER") == "flood" && worker.Launched() {
		go flood()
		worker.Main(demo.Processes()...)
	}
	if mode := os.Getenv("THEUS_TEST_BAD_WORKER"); strings.HasPrefix(mode, "ring-") && worker.Launched() {
		os.Exit(badRingWorker(mode))
	}
	if mode := os.Getenv("THEUS_TEST_BAD_WORKER"); mode != "" && worker.Launched() {
		os.Exit(badWorker(mode))
	}
	if os.Getenv(ringWorkerEnv) != "" && worker.Launched() {
		worker.Main(ringWorkerProcesses()...)
	}
	if os.Getenv("THEUS_TEST_OLD_WORKER") != "" && worker.Launched() {
		os.Exit(oldWorker())
	}
	if os.Getenv("THEUS_TEST_ORPHANS") != "" {
		if worker.Launched() {
			worker.Main(spawnProcess())
		}
		os.Exit(orphanSupervisor())
	}
	if worker.Launched() {
		worker.Main(append(demo.Processes(), demo.Faults()...)...) // as with theus-supervisor --faults
	}
	goleak.VerifyTestMain(m)
}

func start(t *testing.T, n int, tune func(*Config)) *Pool {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Command: []string{exe}, Workers: n, Env: quickExit(), Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	if tune != nil {
		tune(&cfg)
	}
	p, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pids := p.PIDs()
		p.Close(ctx)
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				t.Errorf("worker %d still alive after Close", pid)
			}
		}
		if _, ok := lateWakesMade.LoadAndDelete(p); !ok && p.LateWakes() != 0 {
			t.Errorf("%d lost wake-ups mended late: a dispatch published to a ring was not woken", p.LateWakes())
		}
	})
	return p
}

// lateWakesMade holds the pools whose tests lose wake-ups on purpose;
// start's cleanup fails any other pool that counted one.
var lateWakesMade sync.Map

func makesLateWakes(p *Pool) { lateWakesMade.Store(p, true) }

func dispatch(t *testing.T, p *Pool, name, args string) (*protocol.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, blocks, err := p.Dispatch(ctx, &protocol.Dispatch{Process: name, Attempt: 1, Args: []byte(args)})
	blocks.Close()
	return res, err
}

func TestDispatch(t *testing.T) {
	p := start(t, 2, nil)
	if n := len(p.Processes()); n != len(demo.Processes())+len(demo.Faults()) {
		t.Fatalf("registry has %d processes", n)
	}
	res, err := dispatch(t, p, "counter.add", `{"by":5}`)
	if err != nil || res.Err != nil {
		t.Fatalf("err %v, result err %v", err, res.Err)
	}
	if string(res.Result) != "5" || len(res.Writes) != 1 || res.Writes[0].Path != demo.CounterPath {
		t.Fatalf("result %s writes %+v", res.Result, res.Writes)
	}
	res, err = dispatch(t, p, "no.such", "")
	if err != nil || !errors.Is(res.Err, protocol.ErrUnknownProcess) {
		t.Fatalf("unknown process: %v %v", err, res.Err)
	}
}

func TestCrashIsReportedAndReplaced(t *testing.T) {
	p := start(t, 1, nil)
	before := p.PIDs()
	_, err := dispatch(t, p, "fault.crash", "")
	if !errors.Is(err, ErrWorkerCrashed) {
		t.Fatalf("err = %v, want ErrWorkerCrashed", err)
	}
	res, err := dispatch(t, p, "noop", "")
	if err != nil || res.Err != nil {
		t.Fatalf("after restart: %v %v", err, res)
	}
	after := p.PIDs()
	t.Logf("status %+v", p.WorkerStatus())
	if len(after) != 1 || after[0] == before[0] {
		t.Fatalf("pids before %v after %v", before, after)
	}
	if st := p.WorkerStatus(); st[0].Restarts != 1 || st[0].Processed != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestHungDispatchKillsWorker(t *testing.T) {
	p := start(t, 1, func(c *Config) { c.KillGrace = 100 * time.Millisecond })
	before := p.PIDs()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "fault.sleep", Args: []byte(`{"ms":60000}`)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	res, err := dispatch(t, p, "noop", "")
	if err != nil || res.Err != nil {
		t.Fatalf("after kill: %v %v", err, res)
	}
	if after := p.PIDs(); after[0] == before[0] {
		t.Fatal("the hung worker was not replaced")
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	p := start(t, 1, func(c *Config) {
		c.MaxRestarts = 2
		c.RestartWindow = time.Minute
		c.RestartBackoff = 300 * time.Millisecond
	})
	for range 4 {
		dispatch(t, p, "fault.crash", "")
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.WorkerStatus()[0].State != "backoff" {
		if time.Now().After(deadline) {
			t.Fatalf("slot never backed off: %+v", p.WorkerStatus())
		}
		time.Sleep(5 * time.Millisecond)
	}
	res, err := dispatch(t, p, "noop", "") // waits for the slot to come back
	if err != nil || res.Err != nil {
		t.Fatalf("after backoff: %v %v", err, res)
	}
}

// TestNotAWorker: a binary that is not a worker fails the handshake, and
// the error ends with what it wrote on stderr; one that wrote nothing
// gets no empty stderr note.
func TestNotAWorker(t *testing.T) {
	_, err := Start(Config{Command: []string{"/bin/sh", "-c", "echo not a worker >&2; exit 3"}, StartTimeout: 2 * time.Second, Log: zerolog.Nop()})
	if err == nil {
		t.Fatal("a shell passed the handshake")
	}
	if !strings.Contains(err.Error(), "(worker stderr: not a worker)") {
		t.Fatalf("err = %v, want the worker's stderr in it", err)
	}
	_, err = Start(Config{Command: []string{"/bin/sh", "-c", "exit 3"}, StartTimeout: 2 * time.Second, Log: zerolog.Nop()})
	if err == nil {
		t.Fatal("a silent shell passed the handshake")
	}
	if strings.Contains(err.Error(), "stderr") {
		t.Fatalf("err = %v: a note on a stderr that said nothing", err)
	}
}

// TestStartNeedsARunnableCommand: no command, or one that cannot be
// started, is an error from Start (and leaves no goroutine: goleak, in
// TestMain).
func TestStartNeedsARunnableCommand(t *testing.T) {
	if _, err := Start(Config{Log: zerolog.Nop()}); err == nil || !strings.Contains(err.Error(), "no worker command") {
		t.Fatalf("Start without a command: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-worker")
	_, err := Start(Config{Command: []string{missing}, Workers: 2, Log: zerolog.Nop()})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Start of %s: %v, want a not-exist error naming it", missing, err)
	}
}

// TestSilentWorkerIsKilled: a worker that stops answering heartbeats (here
// frozen with SIGSTOP) is killed and replaced, and its dispatch fails.
func TestSilentWorkerIsKilled(t *testing.T) {
	p := start(t, 1, func(c *Config) {
		c.Heartbeat = 50 * time.Millisecond
		c.HeartbeatTimeout = 300 * time.Millisecond
		c.KillGrace = 100 * time.Millisecond
	})
	before := p.PIDs()
	syscall.Kill(before[0], syscall.SIGSTOP)
	// The dispatch reaches the frozen worker and fails with it, or, if the
	// heartbeat killed it first, runs on the replacement.
	if _, err := dispatch(t, p, "noop", ""); err != nil && !errors.Is(err, ErrWorkerCrashed) {
		t.Fatalf("dispatch to a frozen worker: %v, want ErrWorkerCrashed or success", err)
	}
	for deadline := time.Now().Add(5 * time.Second); alive(before[0]); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the frozen worker is still alive")
		}
	}
	res, err := dispatch(t, p, "noop", "")
	if err != nil || res.Err != nil {
		t.Fatalf("after replacement: %v %v", err, res)
	}
	if after := p.PIDs(); after[0] == before[0] {
		t.Fatal("the frozen worker was not replaced")
	}
}

// TestCloseIsGraceful: Close lets workers exit by themselves (EOF on
// their socket, exit 0) instead of killing them.
func TestCloseIsGraceful(t *testing.T) {
	exe, _ := os.Executable()
	p, err := Start(Config{Command: []string{exe}, Workers: 2, Env: quickExit(), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	procs := []*proc{p.slots[0].cur, p.slots[1].cur}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.Close(ctx)
	for _, pr := range procs {
		<-pr.reaped
		if st := pr.cmd.ProcessState; st == nil || !st.Exited() || st.ExitCode() != 0 {
			t.Errorf("worker %d: %v, want a clean exit 0", pr.pid, st)
		}
	}
}

// quickExit keeps a race-enabled worker from sleeping 1 s at exit, which
// every graceful stop would pay (race.QuickExit).
func quickExit() []string { return []string{race.QuickExit()} }

// TestCloseDoesNotWaitForHungProcesses: a worker whose process ignores
// cancellation still exits soon after the supervisor leaves.
func TestCloseDoesNotWaitForHungProcesses(t *testing.T) {
	exe, _ := os.Executable()
	p, err := Start(Config{Command: []string{exe}, Workers: 1, Env: quickExit(), Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	go p.Dispatch(context.Background(), &protocol.Dispatch{Process: "fault.sleep", Args: []byte(`{"ms":60000}`)})
	time.Sleep(100 * time.Millisecond)
	p.mu.Lock()
	pr := p.slots[0].cur
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	p.Close(ctx)
	if st := pr.cmd.ProcessState; st == nil || st.ExitCode() != 0 || time.Since(start) > 5*time.Second {
		t.Fatalf("worker with a hung process: %v after %s, want exit 0 within about worker.ExitGrace", st, time.Since(start))
	}
}

// TestOversizedDispatchSparesTheWorker: a dispatch too big for a frame is
// refused with bad_request and the worker that would have run it lives.
func TestOversizedDispatchSparesTheWorker(t *testing.T) {
	p := start(t, 1, func(c *Config) { c.MaxFrame = 64 << 10 })
	before := p.PIDs()
	_, _, err := p.Dispatch(context.Background(), &protocol.Dispatch{Process: "noop", Args: make([]byte, 100<<10)})
	if !errors.Is(err, protocol.ErrBadRequest) {
		t.Fatalf("err = %v, want bad_request", err)
	}
	res, err := dispatch(t, p, "noop", "")
	if err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
	if after := p.PIDs(); after[0] != before[0] || p.WorkerStatus()[0].Restarts != 0 {
		t.Fatal("the worker was replaced for a dispatch it never received")
	}
}

// TestDispatchGivesUpWaiting: a Dispatch that waits for a place (every
// worker at MaxInFlight) ends with its context's error when the context
// ends, and with ErrClosed on a closed pool; neither is left counted as
// waiting.
func TestDispatchGivesUpWaiting(t *testing.T) {
	p := start(t, 1, func(c *Config) { c.MaxInFlight = 1 })
	busy := make(chan error, 1)
	go func() {
		_, err := dispatch(t, p, "fault.sleep", `{"ms":2000}`)
		busy <- err
	}()
	for p.WorkerStatus()[0].InFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "noop"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a Dispatch that waited past its deadline: %v", err)
	}
	if n := p.Waiting(); n != 0 {
		t.Fatalf("%d still waiting", n)
	}
	p.Close(context.Background())
	if _, _, err := p.Dispatch(context.Background(), &protocol.Dispatch{Process: "noop"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("a Dispatch on a closed pool: %v, want ErrClosed", err)
	}
	<-busy
}

// TestMaxInFlight: a worker never runs more than MaxInFlight dispatches;
// the next one waits for a place instead of failing.
func TestMaxInFlight(t *testing.T) {
	p := start(t, 1, func(c *Config) { c.MaxInFlight = 2 })
	var wg sync.WaitGroup
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			peak.Store(max(peak.Load(), p.WorkerStatus()[0].InFlight))
			time.Sleep(time.Millisecond)
		}
	}()
	start := time.Now()
	for range 4 {
		wg.Go(func() {
			res, err := dispatch(t, p, "fault.sleep", `{"ms":200}`)
			if err != nil || res.Err != nil {
				t.Error(err, res)
			}
		})
	}
	wg.Wait()
	close(stop)
	if got := peak.Load(); got > 2 {
		t.Fatalf("%d dispatches in flight on one worker, limit 2", got)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("4 sleeps of 200 ms, 2 at a time, took %s: the limit did not hold", d)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	st, ok := procState("/proc/" + strconv.Itoa(pid) + "/stat")
	return ok && st != 'Z'
}

// procState reads the state letter of a /proc stat file (a process's or
// a thread's), and false when the file is gone. A line that does not
// parse has state 0.
func procState(name string) (byte, bool) {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, false
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2], true
	}
	return 0, true
}
