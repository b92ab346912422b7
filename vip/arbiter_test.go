package vip

import (
	"strconv"
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
		n := len(a.mu.hot)
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
