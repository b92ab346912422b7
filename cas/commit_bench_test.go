package cas_test

// Benchmarks of the engine against a bare mutex-protected map doing the
// same read, compare and write (the baseline, impl=mutexmap, measured in
// the same run).
// scripts/bench-engine.sh runs them and prints the ratios.

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

type versioned struct {
	ver uint64
	val []byte
}

// mutexMap is the baseline: read a version, then compare and write.
type mutexMap struct {
	mu sync.Mutex
	m  map[string]versioned
}

func (s *mutexMap) read(k string) (uint64, []byte) {
	s.mu.Lock()
	v := s.m[k]
	s.mu.Unlock()
	return v.ver, v.val
}

func (s *mutexMap) commit(ks []string, expect []uint64, val []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, k := range ks {
		if s.m[k].ver != expect[i] {
			return false
		}
	}
	for i, k := range ks {
		s.m[k] = versioned{expect[i] + 1, val}
	}
	return true
}

func pathsN(n int) ([]string, []contract.Path) {
	ks := make([]string, n)
	ps := make([]contract.Path, n)
	for i := range n {
		ks[i] = "domain.k" + strconv.Itoa(i)
		ps[i] = contract.Path(ks[i])
	}
	return ks, ps
}

// BenchmarkCommit: one read-modify-write of n paths, uncontended.
func BenchmarkCommit(b *testing.B) {
	val := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for _, n := range []int{1, 4} {
		ks, ps := pathsN(n)
		b.Run("paths="+strconv.Itoa(n)+"/impl=mutexmap", func(b *testing.B) {
			s := &mutexMap{m: map[string]versioned{}}
			expect := make([]uint64, n)
			for b.Loop() {
				for i, k := range ks {
					expect[i], _ = s.read(k)
				}
				if !s.commit(ks, expect, val) {
					b.Fatal("conflict")
				}
			}
		})
		b.Run("paths="+strconv.Itoa(n)+"/impl=cas", func(b *testing.B) {
			s := cas.New(cas.Config{Arbiter: vip.New(vip.Config{})})
			d := make(cas.Delta, n)
			for i, p := range ps {
				d[i] = cas.Write{Path: p, Op: contract.OpSet, Value: val}
			}
			ctx := context.Background()
			snap := s.Snapshot()
			for b.Loop() {
				snap.Renew()
				for _, p := range ps {
					snap.Get(p)
				}
				if _, err := s.Commit(ctx, snap.Version(), ps, d, cas.Options{}); err != nil {
					b.Fatal(err)
				}
				snap.Release()
			}
		})
	}
}

// BenchmarkRunner: the full in-process loop (snapshot, run, contract
// check, commit) for one path, for reference next to BenchmarkCommit.
func BenchmarkRunner(b *testing.B) {
	r, c, f := counterRunner()
	ctx := context.Background()
	for b.Loop() {
		if _, err := r.Call(ctx, c, "", f); err != nil {
			b.Fatal(err)
		}
	}
}

// counterRunner returns a Runner with VIP tickets on, the counter.add
// contract and its process.
func counterRunner() (*cas.Runner, contract.Contract, cas.Func) {
	arb := vip.New(vip.Config{})
	r := &cas.Runner{Store: cas.New(cas.Config{Arbiter: arb}), Arbiter: arb}
	p := contract.MustParse("domain.counter")
	c, err := contract.New("counter.add", []contract.Path{p}, []contract.Path{p}, contract.Pure)
	if err != nil {
		panic(err)
	}
	return r, c, counterFunc(p)
}

func counterFunc(p contract.Path) cas.Func {
	return func(_ context.Context, in cas.View) (cas.Outcome, error) {
		v, _, err := in.Get(p)
		if err != nil {
			return cas.Outcome{}, err
		}
		n := int64(0)
		if len(v) > 0 {
			n = int64(v[0])
		}
		return cas.Outcome{Delta: cas.Delta{{Path: p, Op: contract.OpSet, Value: []byte{byte(n + 1)}}}}, nil
	}
}

// BenchmarkSnapshot: taking and releasing a snapshot of a store of 10^3
// and 10^6 paths (the cost must not grow with the store).
func BenchmarkSnapshot(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run("paths="+strconv.Itoa(n), func(b *testing.B) {
			s := cas.New(cas.Config{})
			const batch = 10_000
			for lo := 0; lo < n; lo += batch {
				var d cas.Delta
				for i := lo; i < min(n, lo+batch); i++ {
					d.Set(contract.Path("domain.p"+strconv.Itoa(i%1000)+".k"+strconv.Itoa(i)), []byte{1})
				}
				if _, err := s.Commit(context.Background(), s.Version(), nil, d, cas.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("op=new", func(b *testing.B) {
				for b.Loop() {
					s.Snapshot().Release()
				}
			})
			b.Run("op=renew", func(b *testing.B) {
				sn := s.Snapshot()
				for b.Loop() {
					sn.Renew()
				}
				sn.Release()
			})
		})
	}
}

// BenchmarkHotKey: g goroutines increment one key through the Runner
// (backoff and VIP tickets on). Reports commits/s and retries per commit.
func BenchmarkHotKey(b *testing.B) { benchHotKey(b, false) }

// BenchmarkHotKeyOptimistic is BenchmarkHotKey with Runner.Optimistic:
// first attempts run even while the key is contended, instead of queueing
// for a ticket (what the ticket FIFO costs, measured in the same run).
func BenchmarkHotKeyOptimistic(b *testing.B) { benchHotKey(b, true) }

func benchHotKey(b *testing.B, optimistic bool) {
	for _, g := range []int{1, 8} {
		b.Run("goroutines="+strconv.Itoa(g), func(b *testing.B) {
			r, c, f := counterRunner()
			r.Optimistic = optimistic
			ctx := context.Background()
			var next, conflicts atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range g {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						rep, err := r.Call(ctx, c, "", f)
						if err != nil {
							b.Error(err)
							return
						}
						conflicts.Add(int64(rep.Conflicts))
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			b.ReportMetric(float64(conflicts.Load())/float64(b.N), "retries/commit")
		})
	}
}

// BenchmarkHotKeyMutexMap is the baseline's hot key: g goroutines doing
// read, compare, write on one key of the mutex map, retrying on conflict.
func BenchmarkHotKeyMutexMap(b *testing.B) {
	for _, g := range []int{1, 8} {
		b.Run("goroutines="+strconv.Itoa(g), func(b *testing.B) {
			s := &mutexMap{m: map[string]versioned{}}
			ks := []string{"domain.counter"}
			var next, conflicts atomic.Int64
			var wg sync.WaitGroup
			for range g {
				wg.Go(func() {
					expect := []uint64{0}
					for next.Add(1) <= int64(b.N) {
						for {
							var v []byte
							expect[0], v = s.read(ks[0])
							if s.commit(ks, expect, append(v[:0:0], 1)) {
								break
							}
							conflicts.Add(1)
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			b.ReportMetric(float64(conflicts.Load())/float64(b.N), "retries/commit")
		})
	}
}

// BenchmarkCommitParallel: every goroutine a read-modify-write of its own
// path (no conflicts), all at once: what the commit lock costs when
// commits from many goroutines meet on it. Run with -cpu 1,2,8.
func BenchmarkCommitParallel(b *testing.B) {
	val := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	s := cas.New(cas.Config{Arbiter: vip.New(vip.Config{})})
	var next atomic.Int64
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		p := contract.Path("domain.p" + strconv.FormatInt(next.Add(1), 10))
		ps := []contract.Path{p}
		d := cas.Delta{{Path: p, Op: contract.OpSet, Value: val}}
		snap := s.Snapshot()
		defer snap.Release()
		for pb.Next() {
			snap.Renew()
			snap.Get(p)
			if _, err := s.Commit(ctx, snap.Version(), ps, d, cas.Options{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
