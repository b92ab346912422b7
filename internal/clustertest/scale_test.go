package clustertest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/internal/etcdtest"
	"github.com/theus-run/theus/supervisor"
)

// TestBenchSupervisors measures issue 16's "two supervisors on disjoint
// keys against one": clients increment keys of their own (counters.add,
// no two clients on one key) for a while through one supervisor, then
// the same clients spread over two supervisors on the same 3-member
// cluster, interleaved for 3 rounds; it logs the medians and their
// ratio. It asserts nothing about speed: set THEUS_ETCD_BENCH=1 to run it
// (about 30 s), THEUS_BENCH_CLIENTS (default 16) and THEUS_BENCH_WORKERS
// (workers per supervisor, default 2) to tune it. With the members, the
// supervisors and their workers on one small machine, the ratio says
// how much the second supervisor adds on it, not on separate hosts.
func TestBenchSupervisors(t *testing.T) {
	if os.Getenv("THEUS_ETCD_BENCH") == "" {
		t.Skip("set THEUS_ETCD_BENCH=1 to measure")
	}
	clients, workers := envInt(t, "THEUS_BENCH_CLIENTS", 16), envInt(t, "THEUS_BENCH_WORKERS", 2)
	cl, err := etcdtest.Start(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sups := make([]*harness, 2)
	for i := range sups {
		sups[i] = start(t, workers, func(cfg *supervisor.Config) {
			cfg.Etcd = &supervisor.EtcdConfig{Endpoints: cl.Endpoints(), Prefix: "bench/"}
		})
	}
	conns := make([][]*client.Client, 2) // conns[s][i]: client i's connection to supervisor s
	for s, h := range sups {
		for range clients {
			conns[s] = append(conns[s], h.dial(t))
		}
	}
	const d = 3 * time.Second
	rates := map[int][]float64{}
	for round := range 3 {
		for _, n := range []int{1, 2} {
			// Client i goes through supervisor i%n, on a key no other
			// client of any round writes.
			var commits atomic.Int64
			var stop atomic.Bool
			var wg sync.WaitGroup
			for i := range clients {
				c := conns[i%n][i]
				args := fmt.Sprintf(`{"key":"r%d_n%d_c%d"}`, round, n, i)
				wg.Go(func() {
					for !stop.Load() {
						if _, err := c.Exec(context.Background(), "counters.add", []byte(args)); err != nil {
							t.Errorf("counters.add through supervisor %d: %v", i%n, err)
							return
						}
						commits.Add(1)
					}
				})
			}
			began := time.Now()
			time.Sleep(d)
			stop.Store(true)
			wg.Wait() // the requests in flight at the end count, over the time they took
			took := time.Since(began)
			rates[n] = append(rates[n], float64(commits.Load())/took.Seconds())
		}
	}
	med := func(n int) float64 {
		r := slices.Clone(rates[n])
		slices.Sort(r)
		return r[len(r)/2]
	}
	t.Logf("%d clients on disjoint keys, %d workers per supervisor, rounds of %s", clients, workers, d)
	for _, n := range []int{1, 2} {
		t.Logf("%d supervisor(s): %v commits/s, median %.0f", n, rates[n], med(n))
	}
	t.Logf("2 supervisors / 1 supervisor, disjoint keys: %.2fx", med(2)/med(1))
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}
