package vip_test

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/theus-run/theus/vip"
)

// A ticket granted as another ends takes over its lease timer: no timer is
// armed or stopped for the hand-off, and when the timer fires for the
// earlier ticket it is armed again for what is left of the new one's lease.
func TestLeaseHandedOver(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var kinds []vip.EventKind
	a := vip.New(vip.Config{Lease: 5 * time.Second, Clock: clk, Trace: func(e vip.Event) { kinds = append(kinds, e.Kind) }})
	defer a.Close()
	t1, _ := a.Acquire(bg, "w0", []string{"domain.x"})
	next := acquireAsync(bg, a, "w1", "domain.x")
	for len(a.Held()) != 1 || a.Queued() != 1 {
		time.Sleep(time.Millisecond) // w1 queues behind t1
	}
	clk.advance(time.Second)
	t1.Release()
	r := <-next
	if r.err != nil {
		t.Fatal(r.err)
	}
	t2 := r.tk
	clk.mu.Lock()
	armed, stopped := slices.Clone(clk.d), clk.stopped
	clk.mu.Unlock()
	if !slices.Equal(armed, []time.Duration{5 * time.Second}) || stopped != 0 {
		t.Fatalf("hand-off: timers armed %v, %d stopped; want t1's alone, none stopped", armed, stopped)
	}
	clk.advance(4 * time.Second) // t1's lease would end now; t2 has 1s left
	clk.fire[0]()
	if !t2.Valid() {
		t.Fatal("t2 expired at the end of t1's lease")
	}
	if !slices.Equal(clk.d, []time.Duration{5 * time.Second, time.Second}) {
		t.Fatalf("timers armed %v, want t2's remaining second armed again", clk.d)
	}
	clk.advance(time.Second)
	clk.fire[1]()
	if t2.Valid() {
		t.Fatal("t2 outlived its lease")
	}
	want := []vip.EventKind{vip.Granted, vip.Released, vip.Granted, vip.Expired}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
}

// On the time package, a ticket granted at a hand-off lasts its full lease
// from its own grant, neither less (the timer it took over was armed
// earlier) nor more.
func TestHandedOverLeaseLastsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := vip.New(vip.Config{Lease: 50 * time.Millisecond})
		defer a.Close()
		t1, _ := a.Acquire(bg, "w0", []string{"domain.x"})
		next := acquireAsync(bg, a, "w1", "domain.x")
		synctest.Wait()
		time.Sleep(30 * time.Millisecond)
		t1.Release()
		granted := time.Now()
		t2 := (<-next).tk
		<-t2.Done()
		if el := time.Since(granted); el != 50*time.Millisecond {
			t.Fatalf("the handed-over lease lasted %v, want 50ms", el)
		}
	})
}
