package vip

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Heat makes keys contended for HotFor without a ticket; other keys stay
// free; a negative HotFor turns it off.
func TestHeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := New(Config{HotFor: 10 * time.Millisecond})
		defer a.Close()
		if a.Contended([]string{"domain.k"}) {
			t.Fatal("a cold key is contended")
		}
		a.Heat([]string{"domain.k"})
		if !a.Contended([]string{"domain.k"}) || !a.Contended([]string{"domain"}) || a.Contended([]string{"domain.j"}) {
			t.Fatal("heat covers the wrong keys")
		}
		time.Sleep(11 * time.Millisecond)
		if a.Contended([]string{"domain.k"}) {
			t.Fatal("the key is still hot after HotFor")
		}
		for i := range 3 * maxHot {
			a.Heat([]string{"domain.k" + strconv.Itoa(i)})
		}
		a.mu.Lock()
		n := a.mu.hot.Len()
		a.mu.Unlock()
		if n > maxHot {
			t.Fatalf("%d hot keys remembered, bound %d", n, maxHot)
		}
		off := New(Config{HotFor: -1})
		defer off.Close()
		off.Heat([]string{"domain.k"})
		if off.Contended([]string{"domain.k"}) {
			t.Fatal("heat with HotFor < 0")
		}
	})
}

// A key is hot for exactly HotFor: at the instant it cools it is no longer
// contended, while a key heated later still is.
func TestHeatLastsHotFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := New(Config{HotFor: 10 * time.Millisecond})
		defer a.Close()
		a.Heat([]string{"domain.k1"})
		time.Sleep(5 * time.Millisecond)
		a.Heat([]string{"domain.k2"})
		time.Sleep(5 * time.Millisecond)
		if a.Contended([]string{"domain.k1"}) {
			t.Fatal("domain.k1 is contended HotFor after its heat")
		}
		if !a.Contended([]string{"domain.k2"}) {
			t.Fatal("domain.k2 cooled before HotFor")
		}
		a.Heat(nil) // nothing to heat: changes nothing
		if a.Contended([]string{"domain.k1"}) {
			t.Fatal("an empty Heat made keys contended")
		}
	})
}

// While a ticket is held on other keys, a heated key still cools after
// HotFor: the clock is read then too.
func TestHeatCoolsWhileTicketHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := New(Config{HotFor: 10 * time.Millisecond})
		defer a.Close()
		a.Heat([]string{"domain.k1"})
		tk, err := a.Acquire(context.Background(), "holder", []string{"domain.other"})
		if err != nil {
			t.Fatal(err)
		}
		defer tk.Release()
		if !a.Contended([]string{"domain.k1"}) {
			t.Fatal("domain.k1 is not contended right after its heat")
		}
		time.Sleep(10 * time.Millisecond)
		if a.Contended([]string{"domain.k1"}) {
			t.Fatal("domain.k1 is still contended HotFor after its heat, with a ticket held elsewhere")
		}
	})
}

// A zero HotFor means DefaultHotFor.
func TestDefaultHotFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := New(Config{})
		defer a.Close()
		a.Heat([]string{"domain.k"})
		time.Sleep(DefaultHotFor - time.Nanosecond)
		if !a.Contended([]string{"domain.k"}) {
			t.Fatal("cooled before DefaultHotFor")
		}
		time.Sleep(time.Nanosecond)
		if a.Contended([]string{"domain.k"}) {
			t.Fatal("still hot after DefaultHotFor")
		}
	})
}

func hotKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
}

// At the cap, Heat first forgets the keys that have cooled; only when
// that leaves no room does it forget the hot ones too.
func TestHeatCap(t *testing.T) {
	t.Run("cooled keys make room", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a := New(Config{HotFor: 10 * time.Millisecond})
			defer a.Close()
			a.Heat([]string{"domain.cold"})
			time.Sleep(5 * time.Millisecond)
			a.Heat(hotKeys("domain.h", maxHot-1)) // the cap, exactly
			time.Sleep(5 * time.Millisecond)      // domain.cold cools now
			a.Heat([]string{"domain.new"})
			if !a.Contended([]string{"domain.h0"}) || !a.Contended([]string{"domain.new"}) {
				t.Fatal("hot keys forgotten although a cooled one made room")
			}
			a.mu.Lock()
			n := a.mu.hot.Len()
			_, cold := a.mu.hot.at["domain.cold"]
			a.mu.Unlock()
			if n != maxHot || cold {
				t.Fatalf("%d keys remembered (cooled one kept: %v), want %d", n, cold, maxHot)
			}
		})
	})
	t.Run("one conflict over the cap", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a := New(Config{HotFor: 10 * time.Millisecond})
			defer a.Close()
			a.Heat(hotKeys("domain.h", 2*maxHot))
			a.mu.Lock()
			n := a.mu.hot.Len()
			a.mu.Unlock()
			if n > maxHot {
				t.Fatalf("%d keys remembered, bound %d", n, maxHot)
			}
			if !a.Contended([]string{"domain.h0"}) {
				t.Fatal("a conflict over the cap heated nothing")
			}
		})
	})
	t.Run("all hot: the old ones go", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a := New(Config{HotFor: 10 * time.Millisecond})
			defer a.Close()
			a.Heat(hotKeys("domain.h", maxHot))
			a.Heat([]string{"domain.new"})
			if a.Contended([]string{"domain.h0"}) || !a.Contended([]string{"domain.new"}) {
				t.Fatal("over the cap: want the old keys forgotten and the new one hot")
			}
		})
	})
}

// countingClock is the real clock, counting the reads of Now.
type countingClock struct {
	realClock
	reads atomic.Int64
}

func (c *countingClock) Now() time.Time {
	c.reads.Add(1)
	return c.realClock.Now()
}

// Contended reads no clock while nothing is heated and no ticket is held
// (every uncontended commit asks it), nor once the heat it found cooled is
// forgotten; a heat after that counts again.
func TestContendedReadsNoClockWhenCold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := &countingClock{}
		a := New(Config{HotFor: 10 * time.Millisecond, Clock: clk})
		defer a.Close()
		k := []string{"domain.k1"}
		if a.Contended(k) || clk.reads.Load() != 0 {
			t.Fatalf("nothing heated: contended %v, %d clock reads", a.Contended(k), clk.reads.Load())
		}
		a.Heat(k)
		if !a.Contended(k) {
			t.Fatal("a heated key is not contended")
		}
		time.Sleep(10 * time.Millisecond)
		if a.Contended(k) {
			t.Fatal("still contended after HotFor")
		}
		before := clk.reads.Load()
		for range 3 {
			if a.Contended(k) {
				t.Fatal("contended again after it cooled")
			}
		}
		if n := clk.reads.Load() - before; n != 0 {
			t.Fatalf("%d clock reads once the heat was forgotten", n)
		}
		a.Heat(k)
		if !a.Contended(k) {
			t.Fatal("heated again, not contended")
		}
	})
}
