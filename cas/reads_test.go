package cas_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// rvHist is one commit's effect on a path, as the test recorded it.
type rvHist struct {
	ver     cas.Version
	val     string
	deleted bool
}

// TestReadsAgainstHistory: Get and Subtree, which take no commit lock,
// agree with the recorded history at their snapshot's version while one
// writer commits over 16,000 paths in 400 groups, creating, deleting and
// creating again paths and their parents, so that nodes leave the trie and
// the index splits, doubles and leaves tombstones meanwhile. Readers hold
// some snapshots across commits so that history is kept and trimmed. Run
// with -race.
func TestReadsAgainstHistory(t *testing.T) {
	s := cas.New(cas.Config{})
	const groups, perGroup = 400, 40
	pathOf := func(g, k int) contract.Path {
		return contract.Path(fmt.Sprintf("domain.g%d.k%d", g, k))
	}
	var mu sync.RWMutex
	hist := map[contract.Path][]rvHist{}
	at := func(p contract.Path, v cas.Version) (rvHist, bool) {
		h := hist[p]
		for i := len(h) - 1; i >= 0; i-- {
			if h[i].ver <= v {
				return h[i], !h[i].deleted
			}
		}
		return rvHist{}, false
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg, started sync.WaitGroup
	for r := range 3 {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 11))
			var held []*cas.Snapshot
			defer func() {
				for _, sn := range held {
					sn.Release()
				}
			}()
			for !stop.Load() {
				runtime.Gosched() // one thread under wasm: let the writer on
				sn := s.Snapshot()
				v := sn.Version()
				for range 16 {
					g, k := rng.IntN(groups), rng.IntN(perGroup)
					p := pathOf(g, k)
					e, ok := sn.Get(p)
					mu.RLock()
					want, wok := at(p, v)
					mu.RUnlock()
					if ok != wok || ok && (string(e.Value) != want.val || e.Version != want.ver) {
						t.Errorf("snapshot %d: Get(%s) = %q@%d %v, want %q@%d %v", v, p, e.Value, e.Version, ok, want.val, want.ver, wok)
						stop.Store(true)
						return
					}
					if rng.IntN(8) == 0 {
						gp := contract.Path(fmt.Sprintf("domain.g%d", g))
						sub := sn.Subtree(gp)
						mu.RLock()
						var wantN int
						for kk := range perGroup {
							if _, ok := at(pathOf(g, kk), v); ok {
								wantN++
							}
						}
						mu.RUnlock()
						if len(sub) != wantN {
							t.Errorf("snapshot %d: Subtree(%s) has %d entries, want %d", v, gp, len(sub), wantN)
							stop.Store(true)
							return
						}
						for _, en := range sub {
							mu.RLock()
							w, ok := at(en.Path, v)
							mu.RUnlock()
							if !ok || w.val != string(en.Value) || w.ver != en.Version {
								t.Errorf("snapshot %d: Subtree entry %s = %q@%d, want %q@%d %v", v, en.Path, en.Value, en.Version, w.val, w.ver, ok)
								stop.Store(true)
								return
							}
						}
					}
					reads.Add(1)
				}
				if rng.IntN(4) == 0 && len(held) < 6 {
					held = append(held, sn)
				} else {
					sn.Release()
				}
				if len(held) > 0 && rng.IntN(3) == 0 {
					i := rng.IntN(len(held))
					held[i].Release()
					held = append(held[:i], held[i+1:]...)
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(5, 5))
	started.Wait()
	deadline := time.Now().Add(time.Second)
	commits := 0
	live := map[contract.Path]bool{}
	// Until a second has passed, 3,000 commits are done and the readers
	// have read along (on a loaded machine, or under wasm's one thread,
	// they run only when the writer yields).
	for ; (time.Now().Before(deadline) || commits < 3000 || reads.Load() < 1000) && !stop.Load(); commits++ {
		if commits%64 == 0 {
			runtime.Gosched()
		}
		v := s.Version() + 1
		var d cas.Delta
		n := 1 + rng.IntN(6)
		g := rng.IntN(groups)
		seen := map[contract.Path]bool{}
		mu.Lock()
		for range n {
			p := pathOf(g, rng.IntN(perGroup))
			if seen[p] {
				continue
			}
			seen[p] = true
			// bias: delete live paths more often so groups empty and parents leave
			if live[p] && rng.IntN(3) != 0 {
				d.Delete(p)
				hist[p] = append(hist[p], rvHist{ver: v, deleted: true})
				live[p] = false
			} else {
				val := fmt.Sprintf("%s@%d", p, v)
				d.Set(p, []byte(val))
				hist[p] = append(hist[p], rvHist{ver: v, val: val})
				live[p] = true
			}
		}
		mu.Unlock()
		res, err := s.Commit(bg, s.Version(), nil, d, cas.Options{Mode: cas.Training})
		if err != nil {
			t.Fatal(err)
		}
		if res.Version != v {
			t.Fatalf("version %d, want %d", res.Version, v)
		}
	}
	stop.Store(true)
	wg.Wait()
	dd, nn := s.IndexDepth()
	t.Logf("%d commits, %d reads, index depth %d, %d entries", commits, reads.Load(), dd, nn)
	if reads.Load() == 0 {
		t.Fatal("no reads ran during the commits")
	}
	if dd < 3 {
		t.Fatalf("index depth %d: the index did not split while the readers read", dd)
	}
}
