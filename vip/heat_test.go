package vip

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHeatIndexMatchesOverlaps: HotKeys's lookup agrees with overlaps over
// every key heated and not cooled (the walk it replaced), for random key
// sets of paths that are ancestors, descendants, siblings and look-alikes
// of one another ("domain.a" and "domain.ab"), heated at random times,
// strict or not, through pruning at maxHot.
func TestHeatIndexMatchesOverlaps(t *testing.T) {
	segs := []string{"a", "ab", "b", "k1", "k10"}
	key := func(r *rand.Rand) string {
		parts := []string{"domain"}
		for range r.IntN(4) {
			parts = append(parts, segs[r.IntN(len(segs))])
		}
		return strings.Join(parts, ".")
	}
	keys := func(r *rand.Rand) []string {
		ks := make([]string, 1+r.IntN(3))
		for i := range ks {
			ks[i] = key(r)
		}
		return ks
	}
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 7))
		var h HotKeys
		ref := map[string]int64{} // what the walk saw: key -> cools
		now := int64(1000)
		for range 300 {
			now += int64(r.IntN(30))
			if r.IntN(3) == 0 {
				ks := keys(r)
				if r.IntN(20) == 0 { // a wide conflict: pruning
					for i := range maxHot {
						ks = append(ks, "domain.w"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+key(r)[6:])
					}
					ks = ks[:min(len(ks), maxHot)]
				}
				cools := now + int64(10+r.IntN(50))
				h.Add(ks, now, cools)
				// The policy: past maxHot forget the cooled keys, then all.
				if len(ref)+len(ks) > maxHot {
					for k, c := range ref {
						if c <= now {
							delete(ref, k)
						}
					}
					if len(ref)+len(ks) > maxHot {
						clear(ref)
					}
				}
				for _, k := range ks {
					ref[k] = max(ref[k], cools)
				}
				if len(ref) != len(h.at) {
					t.Fatalf("seed %d: %d keys heated, the policy keeps %d", seed, len(h.at), len(ref))
				}
				continue
			}
			q := keys(r)
			strict := r.IntN(5) == 0
			want := false
			for k, c := range ref {
				if c > now && (strict || overlaps(q, []string{k})) {
					want = true
				}
			}
			if got := h.Contended(q, now, strict); got != want {
				t.Fatalf("seed %d: contended(%q, strict %v) = %v, the walk over %d heated keys says %v", seed, q, strict, got, len(ref), want)
			}
		}
		if len(h.at) > maxHot {
			t.Fatalf("seed %d: %d keys heated, bound %d", seed, len(h.at), maxHot)
		}
	}
}

// BenchmarkContended: Contended of one key while n other keys are hot
// (a spread workload that conflicts now and then), no ticket held.
func BenchmarkContended(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run("hot="+strconv.Itoa(n), func(b *testing.B) {
			a := New(Config{HotFor: time.Hour})
			defer a.Close()
			for i := range n {
				a.Heat([]string{"domain.k" + strconv.Itoa(i)})
			}
			keys := []string{"domain.other"}
			for b.Loop() {
				if a.Contended(keys) {
					b.Fatal("a cold key is contended")
				}
			}
		})
	}
}
