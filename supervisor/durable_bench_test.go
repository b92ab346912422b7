package supervisor

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/durable"
)

// BenchmarkDurableCommits: inflight callers, each adding to its own key
// with counters.add (so nothing conflicts), over at most 8 connections,
// in each durability mode. mode=sync-per-commit is the baseline without
// group commit: one transaction, one fsync, per commit. Every figure is
// commits/s; scripts/bench-durable.sh prints the ratios between modes of
// one run. The state lives in the benchmark's temporary directory (set
// TMPDIR to put it on the disk you want to measure).
func BenchmarkDurableCommits(b *testing.B) {
	modes := []struct {
		name     string
		mode     durable.Mode
		maxBatch int
	}{{"none", durable.None, 0}, {"async", durable.Async, 0}, {"sync", durable.Sync, 0}, {"sync-per-commit", durable.Sync, 1}}
	for _, inflight := range []int{64, 8} {
		for _, m := range modes {
			b.Run(fmt.Sprintf("inflight=%d/mode=%s", inflight, m.name), func(b *testing.B) {
				h := benchSupervisorWith(b, Config{Workers: 2, StateDir: b.TempDir(), Durability: m.mode, JournalMaxBatch: m.maxBatch})
				conns := make([]*client.Client, min(inflight, 8))
				for i := range conns {
					conns[i] = benchClient(b, h)
				}
				var before durable.Stats
				if h.s.journal != nil {
					before = h.s.journal.Stats()
				}
				ctx := context.Background()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				t := time.Now()
				for i := range inflight {
					c := conns[i%len(conns)]
					args := map[string]any{"key": "k" + strconv.Itoa(i)}
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if _, err := c.Exec(ctx, "counters.add", args); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(t).Seconds(), "commits/s")
				if h.s.journal != nil {
					st := h.s.journal.Stats()
					if n := st.Batches - before.Batches; n > 0 {
						b.ReportMetric(float64(st.Commits-before.Commits)/float64(n), "commits/fsync")
					}
				}
				if n := h.s.conflicts.Load(); n > 0 {
					b.Fatalf("%d conflicts between adds to different keys", n)
				}
			})
		}
	}
}
