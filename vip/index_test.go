package vip_test

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/vip"
)

// covers is the model of key overlap: q is root, or under it at a dot.
func covers(root, q string) bool {
	return q == root || strings.HasPrefix(q, root+".")
}

func overlapModel(x, y []string) bool {
	for _, a := range x {
		for _, b := range y {
			if covers(a, b) || covers(b, a) {
				return true
			}
		}
	}
	return false
}

// TestHeldIndexMatchesModel: Blocker and Contended, which look keys up in
// an index of the held tickets, answer what a scan of every held ticket
// answers, as tickets come and go: for keys equal to, above, below and
// beside held ones (a prefix that is not at a dot boundary overlaps
// nothing), with and without the caller's own ticket.
func TestHeldIndexMatchesModel(t *testing.T) {
	segs := []string{"a", "b", "ab"}
	rng := rand.New(rand.NewPCG(1, 2))
	var seen []string // keys made so far: a new key is often one's parent or child
	key := func() string {
		var k string
		switch r := rng.IntN(8); {
		case r < 3 && len(seen) > 0: // a child of a key seen
			k = seen[rng.IntN(len(seen))] + "." + segs[rng.IntN(len(segs))]
		case r < 5 && len(seen) > 0: // a parent of a key seen
			k = seen[rng.IntN(len(seen))]
			if i := strings.LastIndexByte(k, '.'); i > 0 {
				k = k[:i]
			}
		default:
			n := 1 + rng.IntN(3)
			if rng.IntN(4) == 0 {
				n = 14 + rng.IntN(4) // around the depth the index counts together
			}
			parts := make([]string, n)
			for i := range parts {
				parts[i] = segs[rng.IntN(len(segs))]
			}
			k = strings.Join(parts, ".")
		}
		if strings.Count(k, ".") > 20 {
			k = segs[rng.IntN(len(segs))]
		}
		seen = append(seen, k)
		if len(seen) > 64 {
			seen = seen[1:]
		}
		return k
	}
	keys := func() []string {
		ks := make([]string, 1+rng.IntN(3))
		for i := range ks {
			ks[i] = key()
		}
		return ks
	}
	a := vip.New(vip.Config{HotFor: -1})
	defer a.Close()
	var held []*vip.Ticket
	checks, blocked := 0, 0
	for step := range 20000 {
		if len(held) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(held))
			held[i].Release()
			held = append(held[:i], held[i+1:]...)
		} else if ks := keys(); !func() bool {
			for _, h := range held {
				if overlapModel(ks, h.Keys()) {
					return true
				}
			}
			return false
		}() {
			tk, err := a.Acquire(bg, "test", ks) // overlaps nothing held: granted at once
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, tk)
		}
		for range 8 {
			q := keys()
			var own *vip.Ticket
			if len(held) > 0 && rng.IntN(2) == 0 {
				own = held[rng.IntN(len(held))]
			}
			var want []*vip.Ticket // the tickets Blocker may name
			anyHeld := false
			for _, h := range held {
				if overlapModel(q, h.Keys()) {
					anyHeld = true
					if h != own {
						want = append(want, h)
					}
				}
			}
			if got := a.Contended(q); got != anyHeld {
				t.Fatalf("step %d: Contended(%q) = %v with %q held, want %v", step, q, got, a.Held(), anyHeld)
			}
			done := a.Blocker(q, own)
			if (done != nil) != (len(want) > 0) {
				t.Fatalf("step %d: Blocker(%q, own %v) = %v with %q held, want blocked %v", step, q, ownKeys(own), done, a.Held(), len(want) > 0)
			}
			if done != nil {
				blocked++
				named := false
				for _, h := range want {
					named = named || h.Done() == done
				}
				if !named {
					t.Fatalf("step %d: Blocker(%q) named a ticket that does not overlap it", step, q)
				}
			}
			checks++
		}
	}
	for _, h := range held {
		h.Release()
	}
	if a.Active() || a.Contended([]string{"a"}) {
		t.Fatal("a ticket still counts after every one was released")
	}
	if !a.IndexEmpty() {
		t.Fatal("the index of held keys keeps entries after every ticket was released")
	}
	t.Logf("%d checks, %d blocked", checks, blocked)
}

func ownKeys(t *vip.Ticket) []string {
	if t == nil {
		return nil
	}
	return t.Keys()
}

// BenchmarkBlocker: the store's question inside its commit critical
// section while tickets are held, for a key that no ticket holds and for
// one that the caller's own ticket holds.
func BenchmarkBlocker(b *testing.B) {
	for _, n := range []int{1, 32} {
		a := vip.New(vip.Config{HotFor: -1, Lease: time.Hour})
		var own *vip.Ticket
		for i := range n {
			tk, err := a.Acquire(bg, "bench", []string{"domain.counters.k" + strconv.Itoa(i)})
			if err != nil {
				b.Fatal(err)
			}
			own = tk
		}
		free := []string{"domain.counters.k" + strconv.Itoa(n)}
		b.Run("held="+strconv.Itoa(n)+"/key=free", func(b *testing.B) {
			if !a.Active() {
				b.Fatal("no ticket held")
			}
			for b.Loop() {
				if a.Blocker(free, nil) != nil {
					b.Fatal("blocked")
				}
			}
		})
		b.Run("held="+strconv.Itoa(n)+"/key=own", func(b *testing.B) {
			for b.Loop() {
				if a.Blocker(own.Keys(), own) != nil {
					b.Fatal("blocked")
				}
			}
		})
		a.Close()
	}
}
