package pool

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/cpulimit"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/ring"
	"github.com/theus-run/theus/worker"
)

// ringWorkerEnv makes the test binary a worker with two more processes:
// test.wait returns when its call is canceled, test.echo returns a
// result of n bytes.
const ringWorkerEnv = "THEUS_TEST_RING_WORKER"

func ringWorkerProcesses() []worker.Def {
	type echoArgs struct {
		N   int    `json:"n"`
		Pad string `json:"pad"`
	}
	return append(append(demo.Processes(), demo.Faults()...),
		worker.Process("test.wait", worker.Contract{}, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
			<-ctx.Done()
			return worker.None{}, ctx.Err()
		}),
		worker.Process("test.echo", worker.Contract{}, func(ctx *worker.Ctx, in echoArgs) (string, error) {
			return strings.Repeat("x", in.N), nil
		}))
}

func startRing(t *testing.T, n int, tune func(*Config)) *Pool {
	return start(t, n, func(c *Config) {
		c.Env = append(c.Env, ringWorkerEnv+"=1")
		c.Transport = TransportRing
		if tune != nil {
			tune(c)
		}
	})
}

// procOf returns the worker of slot 0.
func procOf(p *Pool) *proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.slots[0].cur
}

// ringRecords is how many records the supervisor wrote in the worker's
// request ring, or -1 when the worker has none.
func ringRecords(p *Pool) int {
	pr := procOf(p)
	if pr == nil || pr.rings == nil {
		return -1
	}
	return int(pr.rings.out.Records())
}

func TestDispatchesTravelInTheRings(t *testing.T) {
	for _, tr := range []string{"", TransportRing, TransportSocket} {
		t.Run("transport="+tr, func(t *testing.T) {
			p := startRing(t, 1, func(c *Config) { c.Transport = tr })
			var wg sync.WaitGroup
			for i := range 50 {
				wg.Go(func() {
					res, err := dispatch(t, p, "counter.add", `{"by":1}`)
					if err != nil || res.Err != nil {
						t.Errorf("dispatch %d: %v %v", i, err, res)
					}
				})
			}
			wg.Wait()
			got := ringRecords(p)
			if cmp.Or(tr, DefaultTransport) == TransportSocket {
				if got != -1 {
					t.Fatalf("transport socket: the worker has a ring pair (%d records)", got)
				}
				return
			}
			if got != 50 {
				t.Fatalf("%d dispatches went through the ring, want 50", got)
			}
		})
	}
	if _, err := Start(Config{Command: []string{"true"}, Transport: "pigeon"}); err == nil || !strings.Contains(err.Error(), "pigeon") {
		t.Fatalf("Start with transport pigeon: %v", err)
	}
}

// TestWorkerWithoutRingUsesTheSocket: a worker that does not map the
// pair (here: it is not told where it is) says so in its Hello and gets
// everything over the socket.
func TestWorkerWithoutRingUsesTheSocket(t *testing.T) {
	p := startRing(t, 1, func(c *Config) { c.Env = append(c.Env, worker.EnvRingFD+"=") })
	for range 20 {
		res, err := dispatch(t, p, "counter.add", `{"by":1}`)
		if err != nil || res.Err != nil {
			t.Fatal(err, res)
		}
	}
	if got := ringRecords(p); got != -1 {
		t.Fatalf("the worker did not map its ring, yet it has one (%d records)", got)
	}
}

// TestBigFramesTakeTheSocket: a dispatch or a result too big for a ring
// record goes over the socket, and the worker stays.
func TestBigFramesTakeTheSocket(t *testing.T) {
	p := startRing(t, 1, nil)
	before := p.PIDs()
	big := 2 * ring.MaxRecord(1<<20)
	pad := strings.Repeat("p", big)
	for _, tc := range []struct {
		args string
		want int
	}{
		{`{"n":` + strconv.Itoa(big) + `}`, big},                     // a big result
		{`{"n":10,"pad":"` + pad + `"}`, 10},                         // a big dispatch
		{`{"n":` + strconv.Itoa(big) + `,"pad":"` + pad + `"}`, big}, // both
		{`{"n":10}`, 10}, // and a small one after them
	} {
		res, err := dispatch(t, p, "test.echo", tc.args)
		if err != nil || res.Err != nil {
			t.Fatal(err, res)
		}
		if len(res.Result) != tc.want+2 {
			t.Fatalf("result of %d bytes, want %d", len(res.Result), tc.want+2)
		}
	}
	if got := ringRecords(p); got != 2 {
		t.Fatalf("%d dispatches went through the ring, want the 2 small ones", got)
	}
	if after := p.PIDs(); len(after) != 1 || after[0] != before[0] {
		t.Fatal("the worker was replaced")
	}
}

// TestFullRingOverflowsToTheSocket: while the worker reads nothing
// (stopped), dispatches fill its request ring; the ones that find it
// full go over the socket, and each gets its result once the worker
// runs again. Both ways of dispatching: Dispatch, and TryDispatchFunc
// with a Wakes (the supervisor's, whose records wait for Wake).
func TestFullRingOverflowsToTheSocket(t *testing.T) {
	ways := map[string]func(p *Pool, args string) (*protocol.Result, error){
		"Dispatch": func(p *Pool, args string) (*protocol.Result, error) {
			return dispatch(t, p, "test.echo", args)
		},
		"TryDispatchFunc": func(p *Pool, args string) (*protocol.Result, error) {
			var w Wakes
			got := make(chan outcome, 1)
			if _, ok := p.TryDispatchFunc(context.Background(), &protocol.Dispatch{Process: "test.echo", Args: []byte(args), Attempt: 1}, completeInto(got), &w); !ok {
				return nil, errors.New("no room")
			}
			w.Wake()
			o := <-got
			return o.res, o.err
		},
	}
	for name, send := range ways {
		t.Run(name, func(t *testing.T) {
			p := startRing(t, 1, func(c *Config) { c.HeartbeatTimeout = time.Minute })
			pr := procOf(p)
			pid := pr.pid
			// Each record is over a quarter of the ring: three fit, not four.
			pad := strings.Repeat("p", pr.rings.maxRec*5/8)
			const n, fit = 6, 3
			stopProcess(t, pid)
			var wg sync.WaitGroup
			resume := sync.OnceFunc(func() { unix.Kill(pid, unix.SIGCONT) })
			defer func() { resume(); wg.Wait() }() // also when the test fails early
			for i := range n {
				wg.Go(func() {
					res, err := send(p, `{"n":`+strconv.Itoa(i)+`,"pad":"`+pad+`"}`)
					if err != nil || res.Err != nil {
						t.Errorf("dispatch %d: %v %v", i, err, res)
						return
					}
					if len(res.Result) != i+2 {
						t.Errorf("dispatch %d: a result of %d bytes, want %d", i, len(res.Result), i+2)
					}
				})
			}
			// The ring full, and a dispatch on its way over the socket:
			// bytes the worker has not read wait in the socket's send
			// queue.
			for deadline := time.Now().Add(10 * time.Second); ringRecords(p) < fit || unsent(t, pr) == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d dispatches in the ring (want %d) and %d bytes queued in the socket (want some)", ringRecords(p), fit, unsent(t, pr))
				}
			}
			resume()
			wg.Wait()
			if after := p.PIDs(); len(after) != 1 || after[0] != pid {
				t.Fatal("the worker was replaced")
			}
		})
	}
}

// stopProcess stops pid with SIGSTOP and waits until every thread of it
// has stopped: kill returns before they all have, and a thread still
// running can read the ring meanwhile.
func stopProcess(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		stopped := 0
		for _, task := range tasks {
			if st, ok := procState(dir + "/" + task.Name() + "/stat"); ok && st == 'T' {
				stopped++
			}
		}
		if stopped == len(tasks) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d threads of %d stopped after SIGSTOP", stopped, len(tasks), pid)
		}
	}
}

// unsent is how many bytes the pool wrote to pr's socket that the worker
// has not read (SIOCOUTQ).
func unsent(t *testing.T, pr *proc) int {
	t.Helper()
	sc, err := pr.conn.Raw().(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := sc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return n
}

// TestCancelRightAfterDispatch: a Cancel sent over the socket right
// behind a Dispatch in the ring may reach the worker first; the worker
// keeps it until it reads the Dispatch. Were it dropped, test.wait
// would run on, the call's KillGrace would pass and the worker would be
// replaced.
func TestCancelRightAfterDispatch(t *testing.T) {
	p := startRing(t, 1, func(c *Config) { c.KillGrace = 10 * time.Second })
	before := p.PIDs()
	for round := range 100 {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				ctx, cancel := context.WithCancel(context.Background())
				go cancel()
				_, blocks, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "test.wait"})
				blocks.Close()
				if err == nil {
					t.Errorf("round %d: test.wait returned without being canceled", round)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
	if after := p.PIDs(); len(after) != 1 || after[0] != before[0] {
		t.Fatal("the worker was replaced: a Cancel was lost")
	}
	if got := ringRecords(p); got < 100 {
		t.Fatalf("only %d dispatches went through the ring", got)
	}
}

// TestWorkerKilledMidBatch: every call in flight on a worker that dies
// fails with ErrWorkerCrashed, whether its Dispatch was read or still in
// the ring.
func TestWorkerKilledMidBatch(t *testing.T) {
	p := startRing(t, 1, nil)
	before := p.PIDs()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			_, _, err := p.Dispatch(context.Background(), &protocol.Dispatch{Process: "test.wait"})
			errs <- err
		})
	}
	for deadline := time.Now().Add(10 * time.Second); p.WorkerStatus()[0].InFlight < 64; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d in flight", p.WorkerStatus()[0].InFlight)
		}
	}
	syscall.Kill(before[0], syscall.SIGKILL)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrWorkerCrashed) {
			t.Fatalf("err = %v, want ErrWorkerCrashed", err)
		}
	}
	res, err := dispatch(t, p, "noop", "")
	if err != nil || res.Err != nil {
		t.Fatal(err, res)
	}
}

// TestCorruptReplyRingKillsTheWorker: a worker that breaks its reply
// ring's rules, or writes a record that is not a Result, is killed with
// a cause that says so, and replaced.
func TestCorruptReplyRingKillsTheWorker(t *testing.T) {
	for mode, want := range map[string]string{
		"ring-corrupt": "reply ring corrupt",
		"ring-garbage": "reply ring: ",
		"ring-kind":    "unexpected dispatch from worker in its reply ring",
	} {
		t.Run(mode, func(t *testing.T) {
			p := start(t, 1, func(c *Config) {
				c.Env = append(c.Env, "THEUS_TEST_BAD_WORKER="+mode)
				c.Transport = TransportRing
				c.RestartBackoff = 10 * time.Millisecond
			})
			before := p.PIDs()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "noop"})
			if !errors.Is(err, ErrWorkerCrashed) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want ErrWorkerCrashed saying %q", err, want)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if after := p.PIDs(); len(after) == 1 && after[0] != before[0] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the worker was not replaced")
				}
			}
		})
	}
}

// badRingWorker maps its ring pair, reads one Dispatch from the request
// ring, then breaks the reply ring as mode says. fd 3 is its socket.
func badRingWorker(mode string) int {
	if strings.HasPrefix(mode, "ring-hostile-") {
		return hostileRingWorker(mode)
	}
	c, err := ipc.FileConn(os.NewFile(3, "sup"), ipc.Options{})
	if err != nil {
		return 1
	}
	fds := ringFDs()
	fd := fds[0]
	f := os.NewFile(uintptr(fd), "ring")
	st, err := f.Stat()
	if err != nil {
		return 1
	}
	raw, err := unix.Mmap(fd, 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return 1
	}
	pair, err := ring.Map(f, ring.Worker)
	if err != nil {
		return 1
	}
	if err := pair.SetDoorbells(os.NewFile(uintptr(fds[1]), "req"), os.NewFile(uintptr(fds[2]), "rep")); err != nil {
		return 1
	}
	c.Send(&protocol.Hello{Magic: protocol.Magic, Protocol: protocol.Version, PID: int64(os.Getpid()), Ring: true,
		Processes: []protocol.ProcessInfo{{Name: "noop", Semantic: "pure"}}})
	if _, err := c.Recv(); err != nil { // Welcome
		return 1
	}
	go func() { // answer Pings; exit with the socket
		for {
			if _, err := c.Recv(); err != nil {
				os.Exit(0)
			}
		}
	}()
	if err := pair.Reader().Wait(context.Background()); err != nil {
		return 1
	}
	if _, err := pair.Reader().Read(nil); err != nil {
		return 1
	}
	switch mode {
	case "ring-garbage":
		pair.Writer().Write([]byte{byte(protocol.KindResult), 0xc1})
	case "ring-kind":
		b, _ := (&protocol.Dispatch{ID: 1}).MarshalMsg([]byte{byte(protocol.KindDispatch)})
		pair.Writer().Write(b)
	case "ring-corrupt":
		// The layout of docs/PROTOCOL.md#rings: the reply ring's control
		// block at 2048 (tail at +0, the consumer's park word at +256),
		// its data after the request ring's. A header of kind 7, then
		// the tail past it, then a ring of its doorbell.
		capacity := binary.NativeEndian.Uint64(raw[16:])
		data := 4096 + capacity
		binary.NativeEndian.PutUint64(raw[data:], 7<<32)
		binary.NativeEndian.PutUint64(raw[2048:], 8)
		binary.NativeEndian.PutUint32(raw[2048+256:], 0)
		unix.Write(fds[2], binary.NativeEndian.AppendUint64(nil, 1)) // the reply ring's doorbell
	}
	select {} // until the supervisor kills it
}

// ringFDs are the descriptors a test worker is given in EnvRingFD: the
// memfd, then its doorbells (0 for a number that is not one).
func ringFDs() [3]int {
	var fds [3]int
	for i, v := range strings.SplitN(os.Getenv(worker.EnvRingFD), ",", len(fds)) {
		fds[i], _ = strconv.Atoi(v)
	}
	return fds
}

// The pool advises a worker to poll its ring (Config.WorkerPoll) while at
// most PollBusy dispatches are in flight, and not to under more load;
// the advice goes with each dispatch, and the count of dispatches in
// flight comes back to zero.
func TestWorkerPollAdvice(t *testing.T) {
	const poll = 70 * time.Microsecond
	p := startRing(t, 1, func(c *Config) { c.WorkerPoll, c.PollBusy = poll, 1 })
	advice := func() time.Duration { return procOf(p).rings.pair.Writer().Poll() }
	if _, err := dispatch(t, p, "counter.add", `{"by":1}`); err != nil {
		t.Fatal(err)
	}
	if got := advice(); got != poll {
		t.Fatalf("one dispatch in flight: advice %v, want %v", got, poll)
	}

	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error, 1)
	go func() {
		_, blocks, err := p.Dispatch(ctx, &protocol.Dispatch{Process: "test.wait", Attempt: 1})
		blocks.Close()
		waited <- err
	}()
	for inFlight(p) != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := dispatch(t, p, "counter.add", `{"by":1}`); err != nil {
		t.Fatal(err)
	}
	if got := advice(); got != 0 {
		t.Fatalf("two dispatches in flight: advice %v, want 0", got)
	}
	cancel()
	if err := <-waited; err == nil {
		t.Fatal("test.wait returned no error after its cancel")
	}
	if _, err := dispatch(t, p, "counter.add", `{"by":1}`); err != nil {
		t.Fatal(err)
	}
	if got := advice(); got != poll {
		t.Fatalf("one dispatch in flight again: advice %v, want %v", got, poll)
	}
	if n := inFlight(p); n != 0 {
		t.Fatalf("%d dispatches counted in flight after all returned", n)
	}

	// The continuation path's way: TryDispatchFunc, the wake deferred.
	for _, want := range []time.Duration{0, poll} {
		var wakes Wakes
		got := make(chan outcome, 2)
		dp := &protocol.Dispatch{Process: "counter.add", Attempt: 1, Args: []byte(`{"by":1}`)}
		if want == 0 { // a second one in flight with it
			if _, ok := p.TryDispatchFunc(context.Background(), dp, completeInto(got), &wakes); !ok {
				t.Fatal("TryDispatchFunc found no room")
			}
		}
		if _, ok := p.TryDispatchFunc(context.Background(), dp, completeInto(got), &wakes); !ok {
			t.Fatal("TryDispatchFunc found no room")
		}
		if got := advice(); got != want {
			t.Fatalf("TryDispatchFunc: advice %v, want %v", got, want)
		}
		wakes.Wake()
		sent := 1
		if want == 0 {
			sent = 2
		}
		for range sent {
			if o := <-got; o.err != nil || o.res.Err != nil {
				t.Fatal(o.err, o.res)
			}
		}
	}
	if n := inFlight(p); n != 0 {
		t.Fatalf("%d dispatches counted in flight after all returned", n)
	}

	off := startRing(t, 1, func(c *Config) { c.WorkerPoll = -1 })
	if _, err := dispatch(t, off, "counter.add", `{"by":1}`); err != nil {
		t.Fatal(err)
	}
	if got := procOf(off).rings.pair.Writer().Poll(); got != 0 {
		t.Fatalf("WorkerPoll -1: advice %v, want 0", got)
	}
}

// The defaults advise polling.
func TestWorkerPollDefaults(t *testing.T) {
	defer func(f func() (float64, bool, error)) { readCPULimit = f }(readCPULimit)
	procs := runtime.GOMAXPROCS(0)
	halfCPU := DefaultPollBusyLimited // GOMAXPROCS 2 or more overstates half a CPU
	if procs < 2 {
		halfCPU = DefaultPollBusy // 1 does not
	}
	for _, c := range []struct {
		name    string
		limit   float64
		limited bool
		err     error
		want    int
	}{
		{"no limit", 0, false, nil, DefaultPollBusy * procs},
		{"a limit of half a CPU", 0.5, true, nil, halfCPU},
		{"a limit GOMAXPROCS follows", float64(procs), true, nil, DefaultPollBusy * procs},
		{"a limit that does not read", 0.5, false, cpulimit.ErrMalformed, DefaultPollBusy * procs},
	} {
		t.Run(c.name, func(t *testing.T) {
			readCPULimit = func() (float64, bool, error) { return c.limit, c.limited, c.err }
			var logged strings.Builder
			cfg := Config{Log: zerolog.New(&logged)}
			cfg.defaults()
			if cfg.WorkerPoll != DefaultWorkerPoll || cfg.PollBusy != c.want {
				t.Fatalf("WorkerPoll %v, PollBusy %d: want %v and %d", cfg.WorkerPoll, cfg.PollBusy, DefaultWorkerPoll, c.want)
			}
			if warned := strings.Contains(logged.String(), "CPU limit"); warned != (c.err != nil) {
				t.Fatalf("logged %q for a read error %v", logged.String(), c.err)
			}
		})
	}
	readCPULimit = func() (float64, bool, error) { return 0.5, true, nil }
	c := Config{PollBusy: 3}
	c.defaults()
	if c.PollBusy != 3 {
		t.Fatalf("PollBusy 3 became %d", c.PollBusy)
	}
}

// The poll's gate is 8 per GOMAXPROCS, or 1 per CPU (rounded up) of a
// CPU limit that GOMAXPROCS overstates.
func TestDefaultPollBusy(t *testing.T) {
	for _, c := range []struct {
		procs   int
		limit   float64
		limited bool
		want    int
	}{
		{2, 0, false, 2 * DefaultPollBusy},
		{16, 0, false, 16 * DefaultPollBusy},
		{2, 1, true, DefaultPollBusyLimited},     // the runtime keeps GOMAXPROCS 2 under a quota of 1
		{2, 0.25, true, DefaultPollBusyLimited},  // rounded up
		{2, 1.5, true, 2 * DefaultPollBusy},      // GOMAXPROCS 2 is the quota's, rounded up
		{4, 3.5, true, 4 * DefaultPollBusy},      // likewise
		{8, 2, true, 2 * DefaultPollBusyLimited}, // GOMAXPROCS set above the quota
		{1, 15, true, DefaultPollBusy},           // GOMAXPROCS set below it: the quota limits nothing more
		{16, 0, true, DefaultPollBusyLimited},    // a zero limit still gates at 1
	} {
		if got := defaultPollBusy(c.procs, c.limit, c.limited); got != c.want {
			t.Errorf("defaultPollBusy(%d, %v, %v) = %d, want %d", c.procs, c.limit, c.limited, got, c.want)
		}
	}
	if DefaultPollBusyLimited < 1 || DefaultPollBusyLimited >= DefaultPollBusy {
		t.Fatalf("DefaultPollBusyLimited %d: want at least 1 (a lone client still polls) and below DefaultPollBusy %d", DefaultPollBusyLimited, DefaultPollBusy)
	}
}

// A real worker polls on the advice: back-to-back dispatches, each sent
// well within the 1ms advised, mostly find it awake (no wake).
func TestWorkersPoll(t *testing.T) {
	p := startRing(t, 1, func(c *Config) { c.WorkerPoll = MaxWorkerPoll })
	if _, err := dispatch(t, p, "counter.add", `{"by":1}`); err != nil {
		t.Fatal(err)
	}
	w := procOf(p).rings.pair.Writer()
	before := w.Wakes()
	const n = 40
	for range n {
		if _, err := dispatch(t, p, "counter.add", `{"by":1}`); err != nil {
			t.Fatal(err)
		}
	}
	woke := w.Wakes() - before
	t.Logf("%d of %d dispatches woke the worker", woke, n)
	if woke > n/2 {
		t.Fatalf("%d of %d back-to-back dispatches woke the worker: it does not poll", woke, n)
	}
}

// inFlight is how many dispatches are in flight on p's workers.
func inFlight(p *Pool) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, s := range p.slots {
		if s.cur != nil {
			n += s.cur.inflight.Load()
		}
	}
	return n
}
