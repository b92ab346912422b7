package cas_test

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
)

// TestReadsDuringChurn: Get and Subtree, which take no commit lock, see
// every commit whole while commits add paths, delete them (their nodes
// leave the trie once no snapshot sees them) and add them again. Each
// commit sets or deletes both paths of a pair at once, so a snapshot must
// see both or neither, with one value and one version; readers hold some
// snapshots across commits so that history is kept and trimmed meanwhile.
// Run with -race.
func TestReadsDuringChurn(t *testing.T) {
	s := cas.New(cas.Config{})
	const pairs = 64
	pathsOf := func(k int) (string, string, string) {
		root := "domain.pair" + strconv.Itoa(k)
		return root, root + ".a", root + ".b"
	}
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			var held []*cas.Snapshot
			defer func() {
				for _, sn := range held {
					sn.Release()
				}
			}()
			for !stop.Load() {
				sn := s.Snapshot()
				for range 8 {
					root, a, b := pathsOf(rng.IntN(pairs))
					ea, okA := sn.Get(P(a))
					eb, okB := sn.Get(P(b))
					if okA != okB || okA && (!bytes.Equal(ea.Value, eb.Value) || ea.Version != eb.Version) {
						t.Errorf("snapshot %d: %s = %q@%d (%v), %s = %q@%d (%v)", sn.Version(), a, ea.Value, ea.Version, okA, b, eb.Value, eb.Version, okB)
						return
					}
					sub := sn.Subtree(P(root))
					if okA && (len(sub) != 2 || !bytes.Equal(sub[0].Value, ea.Value)) || !okA && len(sub) != 0 {
						t.Errorf("snapshot %d: Subtree(%s) = %v, Get(%s) = %q (%v)", sn.Version(), root, sub, a, ea.Value, okA)
						return
					}
					reads.Add(1)
				}
				if rng.IntN(4) == 0 && len(held) < 4 {
					held = append(held, sn) // kept across commits
				} else {
					sn.Release()
				}
				if len(held) > 0 && rng.IntN(3) == 0 {
					held[0].Release()
					held = held[1:]
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(9, 9))
	deadline := time.Now().Add(time.Second)
	commits := 0
	for ; time.Now().Before(deadline) || commits < 2000; commits++ {
		_, a, b := pathsOf(rng.IntN(pairs))
		var d cas.Delta
		if rng.IntN(2) == 0 {
			v := enc(int64(commits))
			d.Set(P(a), v)
			d.Set(P(b), v)
		} else {
			d.Delete(P(a))
			d.Delete(P(b))
		}
		if _, err := s.Commit(bg, s.Version(), nil, d, cas.Options{Mode: cas.Training}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no reads ran during the commits")
	}
	t.Logf("%d commits, %d pair reads", commits, reads.Load())
}
