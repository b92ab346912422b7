package vip_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/theus-run/theus/vip"
)

// acquireAsync starts an Acquire and returns where its result arrives.
// The caller must read it (the goroutine ends when it is sent).
func acquireAsync(ctx context.Context, a *vip.Arbiter, owner string, keys ...string) <-chan result {
	c := make(chan result, 1)
	go func() {
		tk, err := a.Acquire(ctx, owner, keys)
		c <- result{tk, err}
	}()
	return c
}

type result struct {
	tk  *vip.Ticket
	err error
}

// pending reports whether c has no result yet. Call it after
// synctest.Wait, so that an Acquire that could return has returned.
func pending(c <-chan result) bool {
	select {
	case <-c:
		return false
	default:
		return true
	}
}

// A queued request waits behind an earlier queued request it overlaps,
// even when no held ticket overlaps it: otherwise a stream of small
// requests starves a large one.
func TestFIFOAmongQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := vip.New(vip.Config{Lease: time.Hour})
		defer a.Close()
		held, err := a.Acquire(bg, "w0", []string{"domain.a"})
		if err != nil {
			t.Fatal(err)
		}
		wide := acquireAsync(bg, a, "w1", "domain.a", "domain.b")
		synctest.Wait()
		narrow := acquireAsync(bg, a, "w2", "domain.b")
		synctest.Wait()
		if !pending(wide) || !pending(narrow) {
			t.Fatal("a request overlapping a held ticket or an earlier request was granted")
		}
		// A request that overlaps nothing held or queued goes at once.
		free, err := a.Acquire(bg, "w3", []string{"domain.c"})
		if err != nil {
			t.Fatal(err)
		}
		free.Release()
		if got := a.Held(); len(got) != 1 || !slices.Equal(got[0], []string{"domain.a"}) {
			t.Fatalf("held %v: domain.b overtook the wider request queued before it", got)
		}

		held.Release()
		synctest.Wait()
		r := <-wide
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !pending(narrow) {
			t.Fatal("domain.b was granted while the wider request holds it")
		}
		r.tk.Release()
		synctest.Wait()
		r = <-narrow
		if r.err != nil || r.tk.Owner() != "w2" {
			t.Fatalf("narrow: %v", r.err)
		}
		r.tk.Release()
	})
}

// A request cancelled while queued returns as soon as its context ends,
// leaves the queue, and lets those behind it go; a holder is unaffected.
func TestAcquireCancelledReturnsAtOnce(t *testing.T) {
	for _, pos := range []string{"first", "middle"} {
		t.Run(pos, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a := vip.New(vip.Config{Lease: time.Hour})
				defer a.Close()
				held, _ := a.Acquire(bg, "w0", []string{"domain.x"})
				var before, after <-chan result
				if pos == "middle" {
					before = acquireAsync(bg, a, "w1", "domain.x")
					synctest.Wait()
				}
				ctx, cancel := context.WithTimeout(bg, time.Second)
				defer cancel()
				cancelled := acquireAsync(ctx, a, "w2", "domain.x", "domain.y")
				synctest.Wait()
				after = acquireAsync(bg, a, "w3", "domain.x")
				synctest.Wait()

				start := time.Now()
				r := <-cancelled
				if !errors.Is(r.err, context.DeadlineExceeded) || r.tk != nil {
					t.Fatalf("cancelled Acquire: %v %v", r.tk, r.err)
				}
				// Fake time: it returned when its context ended, not when
				// the holder's lease did.
				if el := time.Since(start); el != time.Second {
					t.Fatalf("cancelled Acquire returned after %v, want 1s", el)
				}
				if !held.Valid() {
					t.Fatal("the holder's ticket ended")
				}
				// domain.y is free again: w2 left the queue.
				y, err := a.Acquire(bg, "w4", []string{"domain.y"})
				if err != nil {
					t.Fatal(err)
				}
				y.Release()

				held.Release()
				var order []string
				for _, c := range []<-chan result{before, after} {
					if c == nil {
						continue
					}
					r := <-c
					if r.err != nil {
						t.Fatal(r.err)
					}
					order = append(order, r.tk.Owner())
					r.tk.Release()
				}
				want := []string{"w3"}
				if pos == "middle" {
					want = []string{"w1", "w3"}
				}
				if !slices.Equal(order, want) {
					t.Fatalf("granted %v, want %v", order, want)
				}
			})
		})
	}
}

// A request granted while its context ends either returns the ticket or
// hands it back: a cancelled Acquire never leaves a ticket held.
func TestAcquireCancelledWhileGranted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var cancelW1 context.CancelFunc
		var events []vip.Event
		a := vip.New(vip.Config{Lease: time.Hour, Trace: func(e vip.Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e)
			if e.Kind == vip.Granted && e.Owner == "w1" {
				cancelW1() // the grant and the cancellation race in Acquire's select
			}
		}})
		defer a.Close()
		handedBack := 0
		for range 64 {
			held, _ := a.Acquire(bg, "w0", []string{"k"})
			ctx, cancel := context.WithCancel(bg)
			mu.Lock()
			cancelW1, events = cancel, nil
			mu.Unlock()
			c := acquireAsync(ctx, a, "w1", "k")
			synctest.Wait()
			held.Release()
			r := <-c
			switch {
			case r.err == nil && r.tk != nil && r.tk.Valid():
				r.tk.Release()
			case errors.Is(r.err, context.Canceled) && r.tk == nil:
				handedBack++
				mu.Lock()
				last := events[len(events)-1]
				mu.Unlock()
				if last.Kind != vip.Released || last.Owner != "w1" {
					t.Fatalf("the cancelled request's ticket was not handed back: last event %+v", last)
				}
			default:
				t.Fatalf("Acquire = %v, %v", r.tk, r.err)
			}
			cancel()
			if h := a.Held(); len(h) != 0 {
				t.Fatalf("tickets left held: %v", h)
			}
		}
		if handedBack == 0 {
			t.Fatal("64 races, never a cancellation after the grant (select is random)")
		}
	})
}

func TestTicketValid(t *testing.T) {
	var nilTicket *vip.Ticket
	if nilTicket.Valid() {
		t.Fatal("a nil ticket is valid")
	}
	nilTicket.Release() // a no-op
	a := vip.New(vip.Config{})
	defer a.Close()
	tk, err := a.Acquire(bg, "w0", []string{"domain.x"})
	if err != nil {
		t.Fatal(err)
	}
	if !tk.Valid() || tk.Owner() != "w0" || !slices.Equal(tk.Keys(), []string{"domain.x"}) || tk.ID() == 0 {
		t.Fatalf("a fresh ticket: valid %v owner %q keys %v id %d", tk.Valid(), tk.Owner(), tk.Keys(), tk.ID())
	}
	tk.Release()
	if tk.Valid() {
		t.Fatal("a released ticket is valid")
	}
}

// A zero or negative Lease means DefaultLease.
func TestDefaultLease(t *testing.T) {
	for _, lease := range []time.Duration{0, -time.Second} {
		synctest.Test(t, func(t *testing.T) {
			a := vip.New(vip.Config{Lease: lease})
			defer a.Close()
			tk, _ := a.Acquire(bg, "w0", []string{"domain.x"})
			start := time.Now()
			<-tk.Done()
			if el := time.Since(start); el != vip.DefaultLease {
				t.Fatalf("Lease %v: the ticket lasted %v, want %v", lease, el, vip.DefaultLease)
			}
		})
	}
}

// fakeClock runs a lease's expiry when the test says so, and tells the
// time the test sets.
type fakeClock struct {
	mu      sync.Mutex
	d       []time.Duration
	fire    []func()
	stopped int
	now     time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d = append(c.d, d)
	c.fire = append(c.fire, f)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stopped++
		return true
	}
}

// Leases run on Config.Clock: expiry is its callback, and a ticket that
// ends otherwise stops its timer.
func TestClockDrivesLeases(t *testing.T) {
	clk := &fakeClock{}
	var kinds []vip.EventKind
	a := vip.New(vip.Config{Lease: 5 * time.Second, Clock: clk, Trace: func(e vip.Event) { kinds = append(kinds, e.Kind) }})
	defer a.Close()
	t1, _ := a.Acquire(bg, "w0", []string{"domain.x"})
	t2, _ := a.Acquire(bg, "w0", []string{"domain.y"})
	if !slices.Equal(clk.d, []time.Duration{5 * time.Second, 5 * time.Second}) {
		t.Fatalf("leases asked of the clock: %v", clk.d)
	}
	clk.fire[0]()
	if t1.Valid() || !t2.Valid() {
		t.Fatal("the clock's callback did not expire the first lease alone")
	}
	t2.Release()
	if clk.stopped != 2 {
		t.Fatalf("%d timers stopped, want 2 (each ticket's, once)", clk.stopped)
	}
	clk.fire[1]() // a late timer does nothing
	want := []vip.EventKind{vip.Granted, vip.Granted, vip.Expired, vip.Released}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
}

// Contended sees held tickets over overlapping keys, with heat off.
func TestContendedByTicket(t *testing.T) {
	a := vip.New(vip.Config{Lease: time.Hour, HotFor: -1})
	defer a.Close()
	if a.Contended([]string{"domain.x"}) {
		t.Fatal("contended with nothing held")
	}
	tk, _ := a.Acquire(bg, "w0", []string{"domain.x"})
	for keys, want := range map[string]bool{"domain.x": true, "domain.x.y": true, "domain": true, "domain.xy": false, "global": false} {
		if got := a.Contended([]string{keys}); got != want {
			t.Errorf("Contended(%s) = %v with a ticket on domain.x, want %v", keys, got, want)
		}
	}
	tk.Release()
	if a.Contended([]string{"domain.x"}) {
		t.Fatal("contended after the release")
	}
}

// Keys stay hot for HotFor on Config.Clock, not on the wall clock.
func TestClockDrivesHeat(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	a := vip.New(vip.Config{HotFor: time.Second, Clock: clk})
	defer a.Close()
	a.Heat([]string{"domain.x"})
	if !a.Contended([]string{"domain.x"}) {
		t.Fatal("a key just heated is not contended")
	}
	clk.advance(999 * time.Millisecond)
	if !a.Contended([]string{"domain.x"}) {
		t.Fatal("cooled before HotFor on the arbiter's clock")
	}
	clk.advance(2 * time.Millisecond)
	if a.Contended([]string{"domain.x"}) {
		t.Fatal("still hot after HotFor on the arbiter's clock")
	}
}
