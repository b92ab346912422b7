package supervisor

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/observe"
)

// BenchmarkObserve: what collecting the counters costs the pipelined noop
// (256 in flight on one connection, as BenchmarkPipelined). Three
// supervisors run side by side: meters off (the baseline: no
// per-process outcomes or latencies, no per-commit histograms, no
// commit log), meters on, and meters on with the --http listener, its
// /metrics scraped every second and a status page's event stream open.
// Blocks of calls alternate between them, each first in turn, so that
// the load of a shared machine falls on all alike. It reports each one's calls/s and the
// ratios to the baseline.
func BenchmarkObserve(b *testing.B) {
	const window, block = 256, 2048
	cfgs := []Config{{Workers: 2, noMeters: true}, {Workers: 2}, {Workers: 2}}
	clients := make([]*client.Client, len(cfgs))
	for i, cfg := range cfgs {
		h := benchSupervisorWith(b, cfg)
		clients[i] = benchClient(b, h)
		if i == 2 {
			listen(b, h.s)
		}
	}
	var spent [3]time.Duration
	var done [3]int
	ctx := context.Background()
	b.ResetTimer()
	for n, j := 0, 0; n < b.N; n, j = n+block, j+1 {
		k := min(block, b.N-n)
		for r := range clients {
			i := (r + j) % len(clients) // each goes first in turn
			c := clients[i]
			t := time.Now()
			pipelined(b, k, window, func() error { _, err := c.Exec(ctx, "noop", nil); return err })
			spent[i] += time.Since(t)
			done[i] += k
		}
	}
	b.StopTimer()
	rate := func(i int) float64 { return float64(done[i]) / spent[i].Seconds() }
	b.ReportMetric(rate(0), "calls/s-off")
	b.ReportMetric(rate(1), "calls/s-meters")
	b.ReportMetric(rate(2), "calls/s-http")
	b.ReportMetric(rate(1)/rate(0), "ratio-meters")
	b.ReportMetric(rate(2)/rate(0), "ratio-http")
}

// pipelined runs op n times from window goroutines.
func pipelined(b *testing.B, n, window int, op func() error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range window {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// listen serves s on an HTTP listener until the benchmark ends, with
// /metrics scraped every second and one status page's event stream read.
func listen(b *testing.B, s *Supervisor) {
	srv, err := observe.Start(observe.Config{Addr: "127.0.0.1:0", Log: zerolog.Nop()}, s)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); srv.Close(); wg.Wait() })
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+"metrics", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	})
	wg.Go(func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+"events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
	})
}
