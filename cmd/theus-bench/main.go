// Command theus-bench is the load generator behind scripts/: it drives a
// workload (noop, counter, counter-spread, bank, tensor, mix, spin) from
// many clients against theus (a supervisor it starts itself, or one at
// --socket) or against a peer a user would pick instead (a go-plugin
// plugin over net/rpc or gRPC, Redis, etcd), and writes what it measured
// as JSON (with the machine and the exact command) and PNG plots. It
// always stops by itself: after --duration or --requests, whichever comes
// first. "theus-bench report DIR" tabulates and plots the runs in DIR.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/internal/gcfloor"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/worker"
)

func main() {
	if worker.Launched() {
		worker.Main(demo.Processes()...) // re-executed as the own supervisor's worker
	}
	if pluginLaunched() {
		servePlugin() // re-executed as the go-plugin peer
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// errCheck is a run whose end-of-run check failed: exit status 1.
var errCheck = errors.New("the end-of-run check failed")

type flags struct {
	workload, target, durability, socket, out, name string
	cpuProfile                                      string
	tensorSize, heavySize, gcFloor                  string
	redis, etcd                                     string
	clients, depth, workers, keys, accounts, spinUS int
	workerProcs                                     int
	duration, interval, workerPoll, pause           time.Duration
	requests                                        int64
}

func run(args []string, stdout, stderr io.Writer) int {
	var f flags
	root := &cobra.Command{
		Use:   "theus-bench",
		Short: "Drive a workload against theus or a peer; write JSON results and PNG plots",
		Long: "Runs one workload against one target and writes <out>/<name>.json and three plots " +
			"(<name>-latency.png, -throughput.png, -retries.png). Workloads: noop, counter (one hot key), " +
			"counter-spread (--keys keys), bank (transfers among --accounts accounts; the total is checked), " +
			"tensor (fill, peek, sum, scale of --tensor-size tensors; theus only), mix, spin (bench.spin, " +
			"CPU-bound; theus only). Targets: theus, goplugin-rpc, goplugin-grpc, redis, etcd.",
		Version:       version(),
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd.Context(), f, append([]string{"theus-bench"}, args...), stdout, stderr)
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	fl := root.Flags()
	fl.StringVar(&f.workload, "workload", "noop", "noop, counter, counter-spread, bank, tensor, mix or spin")
	fl.StringVar(&f.target, "target", "theus", "theus, goplugin-rpc, goplugin-grpc, redis or etcd")
	fl.IntVar(&f.clients, "clients", 4, "client connections")
	fl.IntVar(&f.depth, "depth", 1, "requests in flight per client")
	fl.DurationVar(&f.pause, "pause", 0, "each caller's rest after each of its requests (a client that calls now and then: measure its latency, not the throughput); 0: none")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "stop after this long (0: only --requests)")
	fl.Int64Var(&f.requests, "requests", 0, "stop after this many requests (0: only --duration)")
	fl.StringVar(&f.socket, "socket", "", "theus: attach to the supervisor at this socket instead of starting one")
	fl.IntVar(&f.workers, "workers", runtime.NumCPU(), "theus: workers of the supervisor it starts")
	fl.DurationVar(&f.workerPoll, "worker-poll", pool.DefaultWorkerPoll, "theus: how long an idle worker of the supervisor it starts polls its ring, as theus-supervisor --worker-poll (0: never)")
	fl.IntVar(&f.workerProcs, "worker-procs", 1, "theus: GOMAXPROCS of each worker of the supervisor it starts, as theus-supervisor --worker-procs (default 1: the worker count is the parallelism; 0: Go's default, every CPU)")
	fl.StringVar(&f.durability, "durability", "sync", "theus: durability of the supervisor it starts (sync, async, none)")
	fl.StringVar(&f.heavySize, "heavy-size", "auto", "theus: HEAVY zone of the supervisor it starts (auto: enough for the workload)")
	fl.StringVar(&f.gcFloor, "gc-floor", "64MiB", "this process's GC floor, as theus-supervisor's --gc-floor (the supervisor it starts runs in it); for every target, so that load generators are alike; 0: Go's default")
	fl.IntVar(&f.keys, "keys", 1024, "counter-spread, mix: counters")
	fl.IntVar(&f.accounts, "accounts", 64, "bank, mix: accounts")
	fl.StringVar(&f.tensorSize, "tensor-size", "4KiB", "tensor: bytes per tensor")
	fl.IntVar(&f.spinUS, "spin-us", 1000, "spin: CPU microseconds per request")
	fl.StringVar(&f.redis, "redis", "127.0.0.1:6379", "redis: address")
	fl.StringVar(&f.etcd, "etcd", "127.0.0.1:2379", "etcd: endpoint")
	fl.StringVar(&f.out, "out", "bench-results", "directory for the results")
	fl.StringVar(&f.name, "name", "", "file name of the results (default: target-workload[-size])")
	fl.StringVar(&f.cpuProfile, "cpu-profile", "", "write this process's CPU profile over the run to this file, and where its CPU went by goroutine label (with the supervisor it starts, that is the supervisor's too) to the results and the output")
	fl.DurationVar(&f.interval, "interval", 0, "timeline resolution (default: 1s, or duration/20 for short runs)")
	root.AddCommand(reportCmd(stdout))
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "theus-bench:", err)
		return 1
	}
	return 0
}

func runBench(ctx context.Context, f flags, command []string, stdout, stderr io.Writer) error {
	if !contains(workloads, f.workload) {
		return fmt.Errorf("--workload %q: want one of %v", f.workload, workloads)
	}
	if f.clients < 1 || f.depth < 1 {
		return fmt.Errorf("--clients %d --depth %d: want at least 1 of each", f.clients, f.depth)
	}
	if f.duration < 0 || f.requests < 0 || f.duration == 0 && f.requests == 0 {
		return errors.New("--duration 0 and --requests 0: the run would never stop; give one")
	}
	if err := pool.CheckWorkerPoll(f.workerPoll); err != nil {
		return err
	}
	if f.keys < 1 || f.accounts < 2 || f.spinUS < 0 {
		return fmt.Errorf("--keys %d --accounts %d --spin-us %d: want ≥ 1 key, ≥ 2 accounts", f.keys, f.accounts, f.spinUS)
	}
	size, err := humanize.ParseBytes(f.tensorSize)
	if err != nil || size < 4 || size%4 != 0 || size > 16<<30 {
		return fmt.Errorf("--tensor-size %q: want a multiple of 4 bytes up to 16GiB", f.tensorSize)
	}
	w := &workload{name: f.workload, prefix: "b" + strconv.FormatInt(time.Now().UnixNano()%1e12, 36) + "_", keys: f.keys,
		accounts: f.accounts, balance: 1000, tensorSize: int64(size), mixTensor: 4 << 10, spinUS: f.spinUS, callers: f.clients * f.depth}
	if f.pause < 0 {
		return fmt.Errorf("--pause %s: want 0 or more", f.pause)
	}
	lim := limits{duration: f.duration, requests: f.requests, interval: f.interval, pause: f.pause}
	if lim.interval <= 0 {
		lim.interval = time.Second
		if f.duration > 0 && f.duration < 20*time.Second {
			lim.interval = max(f.duration/20, 50*time.Millisecond)
		}
		if f.duration == 0 {
			lim.interval = 250 * time.Millisecond
		}
	}
	floor, err := humanize.ParseBytes(f.gcFloor)
	if err != nil || floor > 1<<40 {
		return fmt.Errorf("--gc-floor %q: want a size up to 1TiB", f.gcFloor)
	}
	gc := gcfloor.Start(floor)
	defer gc.Stop()
	var prof *cpuRun
	if f.cpuProfile != "" {
		if prof, err = createCPU(f.cpuProfile); err != nil {
			return err
		}
		defer prof.abandon()
	}
	t, cfg, err := openTarget(f, w)
	if err != nil {
		return err
	}
	defer func() {
		if err := t.close(); err != nil {
			fmt.Fprintln(stderr, "theus-bench: closing the target:", err)
		}
	}()
	if !t.supports(w.name) {
		return fmt.Errorf("--target %s does not run the %s workload", f.target, w.name)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := t.setup(ctx, w); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	before, err := t.read(ctx, w)
	if err != nil {
		return fmt.Errorf("read the state before the run: %w", err)
	}
	res := &result{Tool: "theus-bench", Version: version(), Command: command, Machine: machineInfo(), Target: f.target, Server: t.version(ctx),
		Workload: w.name, Config: cfg, Started: time.Now().UTC().Format(time.RFC3339)}
	// SIGINT or SIGTERM ends the run early: no new requests, the ones in
	// flight finish, and the results are written as usual. A second one
	// kills the bench.
	interrupted, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	if prof != nil {
		var workers func() []int // the own supervisor's worker PIDs
		if tt, ok := t.(*theusTarget); ok && tt.own != nil {
			workers = tt.own.WorkerPIDs
		}
		if err := prof.begin(workers); err != nil {
			stop()
			return err
		}
	}
	hostBefore, hostErr := readHostTimes()
	err = drive(ctx, interrupted.Done(), t, w, lim, res)
	stop()
	if hostAfter, err2 := readHostTimes(); hostErr == nil && err2 == nil {
		if h, ok := hostBefore.share(hostAfter); ok {
			res.Host = &h
		}
	}
	if prof != nil {
		var perr error
		res.CPU, perr = prof.stop()
		err = errors.Join(err, perr)
	}
	if err != nil {
		return err
	}
	after, err := t.read(ctx, w)
	if err != nil {
		return fmt.Errorf("read the state after the run: %w", err)
	}
	res.Check.Detail, err = w.check(before, after, res.adds)
	res.Check.OK = err == nil
	if err != nil {
		res.Check.Detail = err.Error()
	}
	name := f.name
	if name == "" {
		name = f.target + "-" + w.name
		if w.name == "tensor" {
			name += "-" + bytesLabel(w.tensorSize)
		}
	}
	if err := write(f.out, name, res); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-14s %-15s %10.0f req/s  p50 %6dµs  p99 %7dµs  retries/req %.2f  vip %d  errors %d  check %s  steal %s  -> %s\n",
		targetName(res), what(res), res.Throughput, res.Latency.P50, res.Latency.P99, res.RetriesPerRequest, res.VIP, res.Errors,
		okText(res.Check.OK), stealText(res.Host), filepath.Join(f.out, name+".json"))
	if res.CPU != nil {
		fmt.Fprintln(stdout, "  "+res.CPU.line())
	}
	switch {
	case !res.Check.OK:
		return fmt.Errorf("%w: %s", errCheck, res.Check.Detail)
	case res.Requests > 0 && res.Errors == res.Requests:
		return fmt.Errorf("every request failed: %v", res.ErrorSample)
	}
	return nil
}

// moduleVersion is the version of a dependency in this binary's build.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				return m.Version
			}
		}
	}
	return "(unknown)"
}

func okText(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAILED"
}

// openTarget starts or dials the target and describes the run's config.
func openTarget(f flags, w *workload) (target, config, error) {
	cfg := config{Clients: f.clients, Depth: f.depth, Duration: f.duration.Seconds(), Requests: f.requests}
	if f.pause > 0 {
		cfg.Pause = f.pause.String()
	}
	switch w.name {
	case "counter-spread":
		cfg.Keys = w.keys
	case "bank":
		cfg.Accounts = w.accounts
	case "mix":
		cfg.Keys, cfg.Accounts = w.keys, w.accounts
	case "tensor":
		cfg.TensorSize = w.tensorSize
	case "spin":
		cfg.SpinUS = w.spinUS
	}
	switch f.target {
	case "theus":
		own := ownConfig{workers: f.workers, procs: f.workerProcs, poll: cmp.Or(f.workerPoll, -1), log: zerolog.New(os.Stderr).Level(zerolog.WarnLevel)}
		var err error
		if own.durability, err = durable.ParseMode(f.durability); err != nil {
			return nil, cfg, fmt.Errorf("--durability: %w", err)
		}
		if own.heavySize, err = heavySize(f.heavySize, w, f.workers); err != nil {
			return nil, cfg, err
		}
		if f.socket != "" {
			cfg.Socket = f.socket
		} else {
			cfg.Workers, cfg.Durability, cfg.WorkerProcs, cfg.WorkerPoll = f.workers, f.durability, f.workerProcs, f.workerPoll.String()
		}
		t, err := startTheus(f.socket, f.clients, own, w.spinUS)
		return t, cfg, err
	case "goplugin-rpc", "goplugin-grpc":
		t, err := startPlugin(f.target == "goplugin-grpc", f.clients)
		return t, cfg, err
	case "redis":
		t, err := dialRedis(f.redis, w.callers)
		return t, cfg, err
	case "etcd":
		t, err := dialEtcd(f.etcd, f.clients)
		return t, cfg, err
	}
	return nil, cfg, fmt.Errorf("--target %q: want theus, goplugin-rpc, goplugin-grpc, redis or etcd", f.target)
}

// heavySize is the own supervisor's HEAVY zone: for tensor workloads
// room in any one worker's slab for five tensors per caller (its own and
// its scaled copy, the replacement of each while the old one is still
// referenced, and room for block rounding).
func heavySize(flag string, w *workload, workers int) (int64, error) {
	if flag != "auto" {
		n, err := humanize.ParseBytes(flag)
		if err != nil {
			return 0, fmt.Errorf("--heavy-size %q: %w", flag, err)
		}
		return int64(n), nil
	}
	per := int64(0)
	switch w.name {
	case "tensor":
		per = w.tensorSize
	case "mix":
		per = w.mixTensor
	default:
		return 64 << 20, nil
	}
	slab := 5*int64(w.callers)*per + 64<<20
	return slab * int64(max(workers, 1)), nil
}

// write stores res as <dir>/<name>.json and its plots beside it.
func write(dir, name string, res *result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	base := filepath.Join(dir, name)
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := latencyPlot([]*result{res}, base+"-latency.png"); err != nil {
		return fmt.Errorf("latency plot: %w", err)
	}
	if err := timelinePlot(res, base+"-throughput.png"); err != nil {
		return fmt.Errorf("throughput plot: %w", err)
	}
	if err := retriesPlot(res, base+"-retries.png"); err != nil {
		return fmt.Errorf("retries plot: %w", err)
	}
	return nil
}
