package supervisor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/signal"
)

// BenchmarkSignalSubscribers: commit throughput of ping.send (a process
// whose commit carries one signal) with 0 and with 100 subscribers in the
// same run: in-process (Hub.Subscribe, as the Flux runtime subscribes)
// and over the socket (each a client of its own reading every signal,
// in this process too). docs/BENCHMARKS.md has the ratios (target: at
// least 0.9x). No journal: the figure is what publishing costs, not the
// disk.
func BenchmarkSignalSubscribers(b *testing.B) {
	const inflight = 16
	for _, bc := range []struct {
		subs   int
		socket bool
		dur    string
	}{{0, false, "none"}, {100, false, "none"}, {100, true, "none"}, {0, false, "sync"}, {100, false, "sync"}, {100, true, "sync"}} {
		name := fmt.Sprintf("durability=%s/subscribers=%d", bc.dur, bc.subs)
		if bc.subs > 0 {
			name += map[bool]string{false: "/in-process", true: "/socket"}[bc.socket]
		}
		subs := bc.subs
		b.Run(name, func(b *testing.B) {
			cfg := Config{Workers: 2}
			if bc.dur == "sync" {
				cfg.StateDir, cfg.Durability = b.TempDir(), durable.Sync
			}
			h := benchSupervisorWith(b, cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var got, lagged atomic.Uint64
			var readers sync.WaitGroup
			for range subs {
				if !bc.socket {
					sub := h.s.signals.Subscribe("domain", WatchBuffer)
					readers.Go(func() {
						defer sub.Close()
						var items []signal.Item
						for {
							select {
							case <-sub.Ready():
							case <-ctx.Done():
								return
							}
							items, _ = sub.Take(items)
							for _, it := range items {
								if it.Lagged != 0 {
									lagged.Add(it.Lagged)
								} else {
									got.Add(1)
								}
							}
						}
					})
					continue
				}
				w, err := benchClient(b, h).Watch(ctx, "domain")
				if err != nil {
					b.Fatal(err)
				}
				readers.Go(func() {
					for {
						s, err := w.Next(ctx)
						if err != nil {
							return
						}
						if s.Lagged != 0 {
							lagged.Add(s.Lagged)
						} else {
							got.Add(1)
						}
					}
				})
			}
			conns := make([]*client.Client, 4)
			for i := range conns {
				conns[i] = benchClient(b, h)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			t := time.Now()
			for i := range inflight {
				c := conns[i%len(conns)]
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := c.Exec(ctx, "ping.send", nil); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(t).Seconds(), "commits/s")
			b.StopTimer()
			// Every watcher accounts for every signal, received or lagged.
			want := uint64(subs) * uint64(b.N)
			for deadline := time.Now().Add(time.Minute); got.Load()+lagged.Load() < want && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if n := got.Load() + lagged.Load(); n != want {
				b.Fatalf("watchers accounted for %d signals of %d", n, want)
			}
			if subs > 0 {
				b.ReportMetric(float64(lagged.Load())/float64(want), "lagged/signal")
			}
			cancel()
			readers.Wait()
		})
	}
}
