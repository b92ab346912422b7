package etcdstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/etcdstore"
)

// TestBenchRatios measures, in one run and interleaved (3 rounds, medians),
// what the benchmarks compare on the in-process 3-member cluster:
// counter increments with 8 clients through etcdstore and the Runner
// against the bare etcd client doing the same CAS (Get, then a Txn on the
// key's mod revision); two stores on disjoint keys against one; and
// retries per commit on one hot key. It asserts nothing about speed: set
// THEUS_ETCD_BENCH=1 to run it (it takes about a minute); the figures go
// to the test log.
func TestBenchRatios(t *testing.T) {
	if os.Getenv("THEUS_ETCD_BENCH") == "" {
		t.Skip("set THEUS_ETCD_BENCH=1 to measure")
	}
	d := 2 * time.Second
	type result struct{ rate, retries float64 }
	runs := map[string][]result{}
	order := []string{"bare etcd, spread", "etcdstore, spread", "etcdstore, 1 store disjoint", "etcdstore, 2 stores disjoint", "bare etcd, hot key", "etcdstore, hot key"}
	for round := range 3 {
		for _, name := range order {
			prefix := fmt.Sprintf("bench/%d/%s/", round, name)
			var rate, retries float64
			switch name {
			case "bare etcd, spread":
				rate, retries = bareLoad(t, prefix, 8, 64, d)
			case "bare etcd, hot key":
				rate, retries = bareLoad(t, prefix, 8, 1, d)
			case "etcdstore, spread":
				rate, retries = storeLoad(t, prefix, 1, 8, 64, false, d)
			case "etcdstore, hot key":
				rate, retries = storeLoad(t, prefix, 1, 8, 1, false, d)
			case "etcdstore, 1 store disjoint":
				rate, retries = storeLoad(t, prefix, 1, 8, 8, true, d)
			case "etcdstore, 2 stores disjoint":
				rate, retries = storeLoad(t, prefix, 2, 8, 8, true, d)
			}
			runs[name] = append(runs[name], result{rate, retries})
		}
	}
	med := func(name string) result {
		rs := slices.Clone(runs[name])
		slices.SortFunc(rs, func(a, b result) int { return int(a.rate - b.rate) })
		return rs[len(rs)/2]
	}
	for _, name := range order {
		m := med(name)
		t.Logf("%-30s %7.0f commits/s  %5.2f retries/commit", name, m.rate, m.retries)
	}
	t.Logf("etcdstore / bare etcd, counter-spread, 8 clients: %.2fx", med("etcdstore, spread").rate/med("bare etcd, spread").rate)
	t.Logf("2 stores / 1 store, disjoint keys: %.2fx", med("etcdstore, 2 stores disjoint").rate/med("etcdstore, 1 store disjoint").rate)
	t.Logf("hot key retries per commit: etcdstore %.2f, bare etcd %.2f", med("etcdstore, hot key").retries, med("bare etcd, hot key").retries)
}

// bareLoad runs clients goroutines, each on its own etcd client, that
// increment random keys of n for d, the way an etcd user would.
func bareLoad(t *testing.T, prefix string, clients, n int, d time.Duration) (rate, retries float64) {
	var commits, lost atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range clients {
		c := client(t)
		rng := rand.New(rand.NewPCG(uint64(g), 1))
		wg.Go(func() {
			for time.Now().Before(deadline) {
				key := prefix + strconv.Itoa(rng.IntN(n))
				for {
					r, err := c.Get(bg, key)
					if err != nil {
						t.Error(err)
						return
					}
					v, rev := int64(0), int64(0)
					if len(r.Kvs) > 0 {
						v, _ = strconv.ParseInt(string(r.Kvs[0].Value), 10, 64)
						rev = r.Kvs[0].ModRevision
					}
					tr, err := c.Txn(bg).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, strconv.FormatInt(v+1, 10))).Commit()
					if err != nil {
						t.Error(err)
						return
					}
					if tr.Succeeded {
						break
					}
					lost.Add(1)
				}
				commits.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(commits.Load()) / d.Seconds(), float64(lost.Load()) / float64(max(commits.Load(), 1))
}

// storeLoad runs clients goroutines spread over stores etcdstore Stores
// (each on its own etcd client) that increment keys of n through the
// Runner for d: random keys, or with disjoint each goroutine its own key.
func storeLoad(t *testing.T, prefix string, stores, clients, n int, disjoint bool, d time.Duration) (rate, retries float64) {
	var ss []*etcdstore.Store
	for range stores {
		s, err := etcdstore.New(etcdstore.Config{Client: client(t), Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	var commits, conflicts atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range clients {
		r := runner(ss[g%stores])
		rng := rand.New(rand.NewPCG(uint64(g), 1))
		wg.Go(func() {
			for time.Now().Before(deadline) {
				k := rng.IntN(n)
				if disjoint {
					k = g % n
				}
				key := "domain.c.k" + strconv.Itoa(k)
				c := mustContract(t, "inc", []string{key}, []string{key})
				rep, err := r.Call(bg, c, "", func(_ context.Context, v cas.View) (cas.Outcome, error) {
					b, _, err := v.Get(P(key))
					if err != nil {
						return cas.Outcome{}, err
					}
					var dl cas.Delta
					dl.Set(P(key), enc(dec(t, b)+1))
					return cas.Outcome{Delta: dl}, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				commits.Add(1)
				conflicts.Add(int64(rep.Conflicts))
			}
		})
	}
	wg.Wait()
	return float64(commits.Load()) / d.Seconds(), float64(conflicts.Load()) / float64(max(commits.Load(), 1))
}
