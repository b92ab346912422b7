package supervisor

// Benchmarks of the runtime, each next to the baseline it is judged by,
// measured in the same run: a raw Unix-socket ping-pong and a batched
// msgpack echo between two processes, and a hashicorp/go-plugin net/rpc
// plugin. scripts/bench-runtime.sh prints the ratios.

import (
	"cmp"
	"context"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// benchPeer runs the peer side of a baseline when the test binary is
// started as one; it reports whether it did.
func benchPeer() bool {
	switch os.Getenv("THEUS_BENCH_PEER") {
	case "raw":
		rawEcho()
	case "msgpack":
		msgpackEcho()
	case "goplugin":
		plugin.Serve(&plugin.ServeConfig{HandshakeConfig: pluginHandshake, Plugins: plugin.PluginSet{"echo": &echoPlugin{}}})
	case "spawn":
		os.Stdout.Write([]byte{1})
	case "sink":
		sink()
	default:
		return false
	}
	return true
}

// rawEcho answers 64-byte messages on fd 3 with blocking system calls.
func rawEcho() {
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(3, buf)
		if err != nil || n == 0 {
			return
		}
		unix.Write(3, buf[:n])
	}
}

// msgpackEcho answers every Ping on fd 3 with a Pong, through ipc.Conn
// (the netpoller, msgp codecs, batched writes).
func msgpackEcho() {
	c, err := ipc.FileConn(os.NewFile(3, "peer"), ipc.Options{})
	if err != nil {
		return
	}
	for {
		m, err := c.Recv()
		if err != nil {
			return
		}
		c.Send((*protocol.Pong)(m.(*protocol.Ping)))
	}
}

var pluginHandshake = plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "THEUS_BENCH_PLUGIN", MagicCookieValue: "echo"}

// echoPlugin is a trivial go-plugin net/rpc plugin: Echo returns its arg.
type echoPlugin struct{}

type echoServer struct{}

func (echoServer) Echo(in string, out *string) error { *out = in; return nil }

func (*echoPlugin) Server(*plugin.MuxBroker) (any, error) { return echoServer{}, nil }
func (*echoPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (any, error) {
	return c, nil
}

// peer starts the test binary as a baseline peer holding one end of a
// socketpair on fd 3, and returns the other end.
func peer(b *testing.B, kind string, typ int) int {
	b.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "THEUS_BENCH_PEER="+kind)
	child := os.NewFile(uintptr(fds[1]), "child")
	cmd.ExtraFiles = []*os.File{child}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	child.Close()
	b.Cleanup(func() { unix.Close(fds[0]); cmd.Wait() })
	return fds[0]
}

// latency runs op b.N times and reports the p50 and p99 in ns.
func latency(b *testing.B, op func()) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		op()
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// benchTransportEnv picks the benchmarks' worker transport (ring or
// socket; unset: pool.DefaultTransport).
const benchTransportEnv = "THEUS_BENCH_TRANSPORT"

// benchPathEnv picks the path of a client's Execute: goroutine (one that
// waits for the worker, Config.GoroutinePerExecute); unset: the
// continuation path.
const benchPathEnv = "THEUS_BENCH_EXECUTE_PATH"

// benchPollEnv sets the workers' poll (pool.Config.WorkerPoll) as a
// duration; 0: never; unset: pool.DefaultWorkerPoll.
const benchPollEnv = "THEUS_BENCH_WORKER_POLL"

func benchSupervisor(b *testing.B, workers int) *harness {
	return benchSupervisorWith(b, Config{Workers: workers})
}

// benchSupervisorWith serves a supervisor of cfg, whose plugin (this test
// binary), socket and log it sets, until the benchmark ends.
func benchSupervisorWith(b *testing.B, cfg Config) *harness {
	b.Helper()
	exe, _ := os.Executable()
	sock := filepath.Join(b.TempDir(), "run", "s.sock")
	cfg.Plugins, cfg.Socket, cfg.Log = []pool.Plugin{{Command: []string{exe}}}, sock, zerolog.Nop()
	// The workers run as theus-supervisor runs them: --worker-procs
	// (GOMAXPROCS) 1, unless THEUS_BENCH_WORKER_PROCS says otherwise (0:
	// Go's default).
	if procs := cmp.Or(os.Getenv("THEUS_BENCH_WORKER_PROCS"), "1"); procs != "0" {
		cfg.Pool.Env = append(cfg.Pool.Env, "GOMAXPROCS="+procs)
	}
	if os.Getenv(benchPathEnv) == "goroutine" {
		cfg.GoroutinePerExecute = true // the A/B of docs/BENCHMARKS.md
	}
	if v := os.Getenv(benchPollEnv); v != "" && cfg.Pool.WorkerPoll == 0 {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("%s: %v", benchPollEnv, err)
		}
		cfg.Pool.WorkerPoll = cmp.Or(d, -1) // 0: never (the A/B of docs/BENCHMARKS.md)
	}
	if tr := os.Getenv(benchTransportEnv); tr != "" && cfg.Pool.Transport == "" {
		cfg.Pool.Transport = tr // ring or socket: the A/B of docs/BENCHMARKS.md
	}
	s, err := Start(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	return &harness{s: s, sock: sock}
}

func benchClient(b *testing.B, h *harness) *client.Client {
	c, err := client.Dial(h.sock)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkRoundTrip: one request in flight. raw is the baseline: 64
// bytes each way over a socketpair with blocking system calls.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("impl=raw-socket", func(b *testing.B) {
		fd := peer(b, "raw", unix.SOCK_STREAM)
		buf := make([]byte, 64)
		latency(b, func() {
			unix.Write(fd, buf)
			for got := 0; got < len(buf); {
				n, err := unix.Read(fd, buf[got:])
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
		})
	})
	b.Run("impl=dispatch", func(b *testing.B) {
		h := benchSupervisor(b, 1)
		req := &protocol.Execute{Process: "noop"}
		ctx := context.Background()
		latency(b, func() {
			if rep := h.s.Execute(ctx, req); rep.Err != nil {
				b.Fatal(rep.Err)
			}
		})
	})
	b.Run("impl=client", func(b *testing.B) {
		h := benchSupervisor(b, 1)
		c := benchClient(b, h)
		ctx := context.Background()
		latency(b, func() {
			if _, err := c.Exec(ctx, "noop", nil); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// calls runs op b.N times from inflight goroutines and reports calls/s.
func calls(b *testing.B, inflight int, op func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	t := time.Now()
	for range inflight {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(t).Seconds(), "calls/s")
}

// BenchmarkCalls: noop executes through the client against calls to a
// trivial go-plugin net/rpc plugin, sequential and 16 in flight.
func BenchmarkCalls(b *testing.B) {
	for _, inflight := range []int{1, 16} {
		b.Run("impl=goplugin/inflight="+itoa(inflight), func(b *testing.B) {
			exe, _ := os.Executable()
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "THEUS_BENCH_PEER=goplugin")
			pc := plugin.NewClient(&plugin.ClientConfig{
				HandshakeConfig: pluginHandshake, Plugins: plugin.PluginSet{"echo": &echoPlugin{}},
				Cmd: cmd, AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC}, Logger: quietHCLog(),
			})
			b.Cleanup(pc.Kill)
			rc, err := pc.Client()
			if err != nil {
				b.Fatal(err)
			}
			raw, err := rc.Dispense("echo")
			if err != nil {
				b.Fatal(err)
			}
			c := raw.(*rpc.Client)
			calls(b, inflight, func() error {
				var out string
				return c.Call("Plugin.Echo", "x", &out)
			})
		})
		b.Run("impl=theus/inflight="+itoa(inflight), func(b *testing.B) {
			c := benchClient(b, benchSupervisor(b, 2))
			ctx := context.Background()
			calls(b, inflight, func() error {
				_, err := c.Exec(ctx, "noop", nil)
				return err
			})
		})
		b.Run("impl=theus-opid/inflight="+itoa(inflight), func(b *testing.B) {
			c := benchClient(b, benchSupervisor(b, 2))
			ctx := context.Background()
			var n atomic.Int64
			calls(b, inflight, func() error {
				_, err := c.Do(ctx, client.Request{Process: "noop", OpID: "op-" + strconv.FormatInt(n.Add(1), 10)})
				return err
			})
		})
	}
}

// BenchmarkPipelined: 256 requests in flight on one connection: noop
// executes against a batched msgpack echo (ipc.Conn on both sides).
func BenchmarkPipelined(b *testing.B) {
	const window = 256
	b.Run("impl=msgpack-echo", func(b *testing.B) {
		fd := peer(b, "msgpack", unix.SOCK_STREAM)
		f := os.NewFile(uintptr(fd), "echo")
		c, err := ipc.FileConn(f, ipc.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		sem := make(chan struct{}, window)
		done := make(chan struct{})
		go func() {
			for range b.N {
				if _, err := c.Recv(); err != nil {
					b.Error(err)
					break
				}
				<-sem
			}
			close(done)
		}()
		b.ResetTimer()
		t := time.Now()
		for i := range b.N {
			sem <- struct{}{}
			c.Send(&protocol.Ping{Seq: uint64(i)})
		}
		<-done
		b.ReportMetric(float64(b.N)/time.Since(t).Seconds(), "calls/s")
	})
	b.Run("impl=theus-noop", func(b *testing.B) {
		c := benchClient(b, benchSupervisor(b, 2))
		ctx := context.Background()
		calls(b, window, func() error {
			_, err := c.Exec(ctx, "noop", nil)
			return err
		})
	})
}

// BenchmarkHotKey: clients goroutines, each with its own connection, run
// counter.add on one key.
func BenchmarkHotKey(b *testing.B) {
	for _, clients := range []int{1, 8} {
		b.Run("clients="+itoa(clients), func(b *testing.B) {
			h := benchSupervisor(b, 2)
			cs := make([]*client.Client, clients)
			for i := range cs {
				cs[i] = benchClient(b, h)
			}
			ctx := context.Background()
			var next, attempts, maxAttempts atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			t := time.Now()
			for _, c := range cs {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						res, err := c.Exec(ctx, "counter.add", nil)
						if err != nil {
							b.Error(err)
							return
						}
						attempts.Add(int64(res.Attempts))
						for m := maxAttempts.Load(); int64(res.Attempts) > m && !maxAttempts.CompareAndSwap(m, int64(res.Attempts)); m = maxAttempts.Load() {
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(t).Seconds(), "commits/s")
			b.ReportMetric(float64(attempts.Load()-int64(b.N))/float64(b.N), "retries/commit")
			b.ReportMetric(float64(maxAttempts.Load()), "max-attempts")
		})
	}
}

// BenchmarkStart: a worker from spawn to ready (handshake done) against a
// bare spawn of the same binary to its first byte on stdout.
func BenchmarkStart(b *testing.B) {
	exe, _ := os.Executable()
	b.Run("impl=bare-spawn", func(b *testing.B) {
		latency(b, func() {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "THEUS_BENCH_PEER=spawn")
			out, _ := cmd.StdoutPipe()
			cmd.Start()
			out.Read(make([]byte, 1))
			cmd.Wait()
		})
	})
	b.Run("impl=goplugin-launch", func(b *testing.B) {
		// yamux, inside go-plugin, logs a broken pipe to os.Stderr (read
		// when its session is made) whenever a plugin is killed; go test
		// mixes that into the benchmark lines.
		devNull, _ := os.Open(os.DevNull)
		stderr := os.Stderr
		os.Stderr = devNull
		defer func() { os.Stderr = stderr; devNull.Close() }()
		latency(b, func() {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "THEUS_BENCH_PEER=goplugin")
			pc := plugin.NewClient(&plugin.ClientConfig{
				HandshakeConfig: pluginHandshake, Plugins: plugin.PluginSet{"echo": &echoPlugin{}},
				Cmd: cmd, AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC}, Logger: quietHCLog(),
			})
			rc, err := pc.Client()
			if err == nil {
				_, err = rc.Dispense("echo")
			}
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			pc.Kill()
			b.StartTimer()
		})
	})
	b.Run("impl=worker-ready", func(b *testing.B) {
		latency(b, func() {
			p, err := pool.Start(pool.Config{Command: []string{exe}, Workers: 1, Log: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			p.Close(context.Background())
			b.StartTimer()
		})
	})
}

// BenchmarkWorkers: worker-count scaling. 4 clients keep 256 executes in
// flight, of noop (the runtime's own cost) and of bench.spin (200 us of
// CPU in the worker).
func BenchmarkWorkers(b *testing.B) {
	for _, proc := range []string{"noop", "bench.spin"} {
		for _, workers := range []int{1, 2, 4, 8, 16} {
			b.Run("proc="+proc+"/workers="+itoa(workers), func(b *testing.B) {
				h := benchSupervisor(b, workers)
				cs := make([]*client.Client, 4)
				for i := range cs {
					cs[i] = benchClient(b, h)
				}
				var args any
				if proc == "bench.spin" {
					args = map[string]int{"us": 200}
				}
				ctx := context.Background()
				var i atomic.Int64
				calls(b, 256, func() error {
					_, err := cs[i.Add(1)%4].Exec(ctx, proc, args)
					return err
				})
			})
		}
	}
}

func itoa(n int) string { return string(rune('0'+n/10%10)) + string(rune('0'+n%10)) }
