package supervisor

import (
	"context"
	"sync"
	"testing"
)

// BenchmarkBigNeighbor: the latency of noop executes on a worker whose
// other executes return large results (1 MiB of JSON each, 4 in flight),
// which the supervisor must check before it commits them. Compare the
// two execute paths (THEUS_BENCH_EXECUTE_PATH=goroutine).
func BenchmarkBigNeighbor(b *testing.B) {
	h := benchSupervisor(b, 1)
	c := benchClient(b, h)
	big := benchClient(b, h)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := big.Exec(ctx, "test.big", map[string]int{"n": 1 << 20}); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		})
	}
	latency(b, func() {
		if _, err := c.Exec(context.Background(), "noop", nil); err != nil {
			b.Fatal(err)
		}
	})
}
