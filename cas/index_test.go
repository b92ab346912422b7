package cas

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/theus-run/theus/contract"
)

// indexModel drives a pathIndex and a map with the same operations and
// checks that they agree.
type indexModel struct {
	t     testing.TB
	x     *pathIndex
	nodes map[contract.Path]*node
}

func newIndexModel(t testing.TB) *indexModel {
	return &indexModel{t: t, x: newPathIndex(), nodes: map[contract.Path]*node{}}
}

// toggle puts p if it is absent and removes it if present.
func (m *indexModel) toggle(p contract.Path) {
	if n, ok := m.nodes[p]; ok {
		m.x.remove(n)
		delete(m.nodes, p)
		return
	}
	n := &node{path: p}
	m.x.put(n)
	m.nodes[p] = n
}

func (m *indexModel) check(p contract.Path) {
	m.t.Helper()
	if got, want := m.x.get(p), m.nodes[p]; got != want {
		m.t.Fatalf("get(%q) = %p, want %p", p, got, want)
	}
}

func (m *indexModel) checkAll() {
	m.t.Helper()
	for p := range m.nodes {
		m.check(p)
	}
	if got := m.x.len(); got != len(m.nodes) {
		m.t.Fatalf("index holds %d entries, want %d", got, len(m.nodes))
	}
	d := m.x.dir.Load()
	for i := range d.segs {
		s := d.segs[i].Load()
		if s.used*4 > len(s.slots)*3 || s.depth > d.depth {
			m.t.Fatalf("segment %d: %d of %d slots used, depth %d of %d", i, s.used, len(s.slots), s.depth, d.depth)
		}
		for j := range s.slots {
			if n := s.slots[j].Load(); n != nil && n != tombstone && d.segmentOf(n.hash)>>(d.depth-s.depth) != i>>(d.depth-s.depth) {
				m.t.Fatalf("%q in segment %d, its hash picks %d", n.path, i, d.segmentOf(n.hash))
			}
		}
	}
}

func keyPath(i int) contract.Path { return contract.Path("domain.k" + strconv.Itoa(i)) }

// TestIndexAgainstAMap: puts and removes over a key space that makes
// segments split, rebuild and the directory double, checked against a map
// after every step (a sample) and in full along the way.
func TestIndexAgainstAMap(t *testing.T) {
	m := newIndexModel(t)
	rng := rand.New(rand.NewPCG(1, 2))
	const keys = 20000
	for step := range 200000 {
		k := rng.IntN(keys)
		if step < 30000 {
			k = step % keys // fill first, so that removals find entries
		}
		m.toggle(keyPath(k))
		m.check(keyPath(k))
		m.check(keyPath(rng.IntN(keys)))
		if step%20000 == 0 {
			m.checkAll()
		}
	}
	m.checkAll()
	if d := m.x.dir.Load(); d.depth < 5 {
		t.Fatalf("directory depth %d after %d entries: the splits were not exercised", d.depth, len(m.nodes))
	}
	for p := range m.nodes {
		m.toggle(p)
	}
	m.checkAll()
}

// TestIndexGrowsAtMaxDepth: a segment that cannot split (its depth at the
// bound) grows instead, and keeps every entry.
func TestIndexGrowsAtMaxDepth(t *testing.T) {
	defer func(d uint) { maxDirDepth = d }(maxDirDepth)
	maxDirDepth = 1
	m := newIndexModel(t)
	for k := range 4 * segSlots {
		m.toggle(keyPath(k))
	}
	m.checkAll()
	d := m.x.dir.Load()
	if d.depth != 1 || len(d.segs[0].Load().slots) <= segSlots {
		t.Fatalf("depth %d, segment of %d slots: want depth 1 and grown segments", d.depth, len(d.segs[0].Load().slots))
	}
}

// TestIndexRebuildsTombstones: removing and adding again reuses a
// segment, rebuilt without its tombstones, rather than splitting it.
func TestIndexRebuildsTombstones(t *testing.T) {
	m := newIndexModel(t)
	for k := range 100000 {
		m.toggle(keyPath(k % 64)) // at most 64 entries at a time
	}
	m.checkAll()
	if d := m.x.dir.Load(); d.depth != 0 {
		t.Fatalf("directory depth %d with at most 64 entries: tombstones were split, not dropped", d.depth)
	}
}

// TestIndexReadersDuringWrites: readers without a lock always find the
// entries that stay, while one writer adds and removes others (splitting,
// rebuilding and doubling meanwhile). Run with -race.
func TestIndexReadersDuringWrites(t *testing.T) {
	x := newPathIndex()
	const stay = 500
	kept := make([]*node, stay)
	for i := range kept {
		kept[i] = &node{path: contract.Path("domain.stay" + strconv.Itoa(i))}
		x.put(kept[i])
	}
	var stop atomic.Bool
	var wg, started sync.WaitGroup
	var lookups atomic.Int64
	for r := range 3 {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			i := r
			for !stop.Load() {
				if i%64 == 0 {
					runtime.Gosched() // one thread under wasm: let the writer on
				}
				n := kept[i%stay]
				if got := x.get(n.path); got != n {
					t.Errorf("get(%q) = %p during writes, want %p", n.path, got, n)
					return
				}
				if x.get(contract.Path("domain.never"+strconv.Itoa(i%stay))) != nil {
					t.Errorf("found a path never put")
					return
				}
				i++
				lookups.Add(1)
			}
		})
	}
	started.Wait()
	var churn []*node
	for k := range 60000 {
		if k%256 == 0 {
			runtime.Gosched() // a loaded machine, or one thread: let the readers in
		}
		n := &node{path: keyPath(k)}
		x.put(n)
		churn = append(churn, n)
		if k%3 == 2 {
			x.remove(churn[0])
			churn = churn[1:]
		}
	}
	stop.Store(true)
	wg.Wait()
	if lookups.Load() == 0 {
		t.Fatal("the readers never ran")
	}
	if d := x.dir.Load(); d.depth < 5 {
		t.Fatalf("directory depth %d: the writer did not split while they read", d.depth)
	}
}

// FuzzIndex: any sequence of puts and removes over a small key space
// agrees with a map.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0, 1, 2})
	f.Add(make([]byte, 600))
	f.Fuzz(func(t *testing.T, ops []byte) {
		m := newIndexModel(t)
		for i, op := range ops {
			m.toggle(keyPath(int(op) + 256*(i%4)))
			m.check(keyPath(int(op)))
		}
		m.checkAll()
	})
}
