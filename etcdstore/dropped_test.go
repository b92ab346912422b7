package etcdstore_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
)

// dropCollector gathers what a WatchDropped hands on.
type dropCollector struct {
	mu   sync.Mutex
	vals []string
}

func (c *dropCollector) dropped(p contract.Path, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vals = append(c.vals, string(p)+"="+string(v))
}

func (c *dropCollector) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.vals)
}

// waitFor polls until the collector holds n values, and returns them.
func (c *dropCollector) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if got := c.got(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("dropped %v, want %d values", c.got(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchDropped starts s.WatchDropped after revision after, selecting the
// values that start with "mine"; it stops with the test.
func watchDropped(t *testing.T, s *etcdstore.Store, after cas.Version) *dropCollector {
	t.Helper()
	col := &dropCollector{}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	sel := func(p contract.Path, v []byte) bool {
		return p.InZone(contract.ZoneHeavy) && strings.HasPrefix(string(v), "mine")
	}
	go func() { done <- s.WatchDropped(ctx, after, etcdstore.DropWatch{Select: sel, Dropped: col.dropped}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("WatchDropped: %v, want context.Canceled", err)
		}
	})
	return col
}

// A value that one Store selects is handed on when any Store replaces
// or deletes it, and not while a view of the watching Store that could
// read it is live; values not selected, and values not replaced, never
// are.
func TestDroppedAcrossStores(t *testing.T) {
	a, b := store(t), store(t)
	from, err := a.Version(bg)
	if err != nil {
		t.Fatal(err)
	}
	col := watchDropped(t, a, from)
	set := func(s *etcdstore.Store, p, v string) {
		var d cas.Delta
		d.Set(P(p), []byte(v))
		commit(t, s, d, cas.Options{})
	}
	set(a, "heavy.w", "mine-1")
	set(a, "heavy.keep", "mine-kept")
	set(b, "heavy.theirs", "theirs-1")
	set(b, "domain.mine", "mine-data") // not HEAVY: not selected
	old, err := a.View(bg, []contract.Path{P("heavy")})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := old.Get(P("heavy.w")); !ok || string(e.Value) != "mine-1" {
		t.Fatalf("the view reads %q, %v", e.Value, ok)
	}
	set(b, "heavy.w", "mine-2")         // replaced by another Store, while a view reads it
	set(b, "heavy.theirs", "theirs-2")  // not selected
	set(b, "domain.mine", "mine-data2") // not selected
	deadline := time.Now().Add(time.Minute)
	for a.Pending() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d values held for the live view, want 1", a.Pending())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := col.got(); len(got) != 0 {
		t.Fatalf("dropped %v while a view that reads it is live", got)
	}
	old.Release()
	if got := col.waitFor(t, 1); !slices.Equal(got, []string{"heavy.w=mine-1"}) {
		t.Fatalf("dropped %v, want heavy.w=mine-1", got)
	}
	var d cas.Delta
	d.Delete(P("heavy.w"))
	commit(t, b, d, cas.Options{})
	if got := col.waitFor(t, 2); !slices.Equal(got, []string{"heavy.w=mine-1", "heavy.w=mine-2"}) {
		t.Fatalf("dropped %v, want the deleted heavy.w=mine-2 after heavy.w=mine-1", got)
	}
	set(a, "heavy.w", "mine-3") // a new value after a delete replaces nothing
	set(a, "heavy.last", "mine-last")
	set(a, "heavy.last", "mine-last2") // a marker: everything before it was seen
	col.waitFor(t, 3)
	if got := col.got(); !slices.Equal(got, []string{"heavy.w=mine-1", "heavy.w=mine-2", "heavy.last=mine-last"}) {
		t.Fatalf("dropped %v", got)
	}
	if a.Pending() != 0 {
		t.Fatalf("%d values still held with no live view", a.Pending())
	}
}
