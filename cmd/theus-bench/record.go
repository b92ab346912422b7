package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/theus-run/theus/internal/golabel"
)

// Latencies are recorded in microseconds, 1 µs to 1 hour, 3 significant
// digits.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)
}

// limits says when a run stops: whichever comes first.
type limits struct {
	duration time.Duration // 0: no time limit
	requests int64         // 0: no cap
	interval time.Duration // timeline resolution
	pause    time.Duration // each caller's rest after each request; 0: none
}

// rest waits d, and reports false when the run ends meanwhile.
func rest(ctx context.Context, interrupt <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-interrupt:
		return false
	case <-ctx.Done():
		return false
	}
}

// counters are the run's totals, read by the sampler while callers add.
type counters struct {
	requests, errors, insufficient, retries, vip, adds atomic.Int64
}

// caller is one request loop's own record (no locking).
type caller struct {
	all  *hdrhistogram.Histogram
	byOp map[string]*hdrhistogram.Histogram
	errs []string // the first few distinct errors
}

// drive runs w against t from w.callers loops until the limits or until
// interrupt is closed, and returns the measurements; the check is the
// caller's. Requests run under ctx.
func drive(ctx context.Context, interrupt <-chan struct{}, t target, w *workload, lim limits, res *result) error {
	var c counters
	var issued atomic.Int64
	callers := make([]*caller, w.callers)
	start := time.Now()
	var deadline time.Time
	if lim.duration > 0 {
		deadline = start.Add(lim.duration)
	}
	stopSampler := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() { res.Timeline = sample(&c, start, lim, stopSampler) })

	var wg sync.WaitGroup
	for i := range callers {
		rec := &caller{all: newHist(), byOp: map[string]*hdrhistogram.Histogram{}}
		callers[i] = rec
		wg.Go(func() {
			golabel.Set(roleCaller, i)
			rng := rand.New(rand.NewPCG(uint64(i)+1, uint64(start.UnixNano())))
			for n := int64(0); ; n++ {
				if n > 0 && lim.pause > 0 && !rest(ctx, interrupt, lim.pause) {
					return // a rest after each request, failed ones too
				}
				if lim.requests > 0 && issued.Add(1) > lim.requests {
					return
				}
				if !deadline.IsZero() && time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
				select {
				case <-interrupt:
					return
				default:
				}
				r := w.next(i, n, rng)
				t0 := time.Now()
				out, err := t.do(ctx, i, r)
				us := time.Since(t0).Microseconds()
				c.requests.Add(1)
				switch {
				case err == errInsufficient:
					c.insufficient.Add(1)
				case err != nil:
					c.errors.Add(1)
					if msg := err.Error(); len(rec.errs) < 3 && !contains(rec.errs, msg) {
						rec.errs = append(rec.errs, msg)
					}
					continue
				}
				rec.all.RecordValue(max(us, 1))
				h := rec.byOp[r.op]
				if h == nil {
					h = newHist()
					rec.byOp[r.op] = h
				}
				h.RecordValue(max(us, 1))
				c.retries.Add(int64(out.retries))
				if out.vip {
					c.vip.Add(1)
				}
				if r.op == "add" && err == nil {
					c.adds.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopSampler)
	sampler.Wait()

	all := newHist()
	byOp := map[string]*hdrhistogram.Histogram{}
	for _, rec := range callers {
		all.Merge(rec.all)
		for op, h := range rec.byOp {
			if byOp[op] == nil {
				byOp[op] = newHist()
			}
			byOp[op].Merge(h)
		}
		for _, e := range rec.errs {
			if len(res.ErrorSample) < 5 && !contains(res.ErrorSample, e) {
				res.ErrorSample = append(res.ErrorSample, e)
			}
		}
	}
	res.Elapsed = elapsed.Seconds()
	res.Requests, res.Errors, res.Insufficient = c.requests.Load(), c.errors.Load(), c.insufficient.Load()
	res.Retries, res.VIP, res.adds = c.retries.Load(), c.vip.Load(), c.adds.Load()
	ok := res.Requests - res.Errors
	res.Throughput = float64(ok) / elapsed.Seconds()
	if ok > 0 {
		res.RetriesPerRequest = float64(res.Retries) / float64(ok)
	}
	res.Latency = summarize(all)
	res.Percentiles = percentiles(all)
	res.ByOp = map[string]latency{}
	for op, h := range byOp {
		res.ByOp[op] = summarize(h)
	}
	return nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// sample records the counters every interval until stop, drawing a
// progress bar on a terminal.
func sample(c *counters, start time.Time, lim limits, stop <-chan struct{}) []point {
	var bar *progressbar.ProgressBar
	if term.IsTerminal(int(os.Stderr.Fd())) {
		if lim.duration > 0 {
			bar = progressbar.NewOptions64(int64(lim.duration/time.Second), progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("seconds"), progressbar.OptionClearOnFinish())
		} else {
			bar = progressbar.NewOptions64(lim.requests, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription("requests"), progressbar.OptionClearOnFinish())
		}
		defer bar.Finish()
	}
	tick := time.NewTicker(lim.interval)
	defer tick.Stop()
	var out []point
	var last point
	take := func(now time.Time) {
		p := point{T: now.Sub(start).Seconds(), Requests: c.requests.Load(), Errors: c.errors.Load(), Retries: c.retries.Load(), VIP: c.vip.Load()}
		d := point{T: p.T, Requests: p.Requests - last.Requests, Errors: p.Errors - last.Errors, Retries: p.Retries - last.Retries, VIP: p.VIP - last.VIP}
		d.Rate = float64(d.Requests) / (p.T - last.T)
		out = append(out, d)
		last = p
		if bar != nil {
			if lim.duration > 0 {
				bar.Set64(int64(p.T))
			} else {
				bar.Set64(p.Requests)
			}
			bar.Describe(fmt.Sprintf("%.0f req/s", d.Rate))
		}
	}
	for {
		select {
		case now := <-tick.C:
			take(now)
		case <-stop:
			// The last, partial interval counts unless it is a sliver; a
			// run shorter than a sliver (a few hundred fast requests) still
			// gets its one point.
			if now := time.Now(); len(out) == 0 || now.Sub(start).Seconds()-last.T > lim.interval.Seconds()/10 {
				take(now)
			}
			return out
		}
	}
}

// machineInfo describes where a run happened.
func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGiB = float64(kb) / (1 << 20)
		}
	}
	return m
}
