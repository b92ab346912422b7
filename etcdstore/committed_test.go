package etcdstore_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/vip"
)

// Config.Committed sees each commit the Store applied, with its version,
// its changes (an append with its entry number), its op id and its
// origin; not the commits that failed, nor another Store's.
func TestCommittedHook(t *testing.T) {
	var mu sync.Mutex
	var got []cas.Commit
	s, err := etcdstore.New(etcdstore.Config{Client: client(t), Prefix: "t/" + t.Name() + "/", Committed: func(c cas.Commit) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, c)
	}})
	if err != nil {
		t.Fatal(err)
	}
	other := store(t)
	var d cas.Delta
	d.Set(P("domain.a"), enc(1))
	d.Delete(P("domain.b"))
	d.Append(P("domain.log_x"), enc(2))
	origin := cas.Origin{Process: "p.one", Attempts: 2, Conflicts: 1}
	r := commit(t, s, d, cas.Options{OpID: "op-1", Origin: origin}, P("domain.a"))
	commit(t, other, d, cas.Options{})
	sn, err := s.View(bg, []contract.Path{P("domain.a")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(bg, r.Version, []contract.Path{P("domain.a")}, d, cas.Options{}); !isConflict(err) {
		t.Fatalf("a stale commit: %v, want a conflict", err)
	}
	sn.Release()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("Committed saw %d commits, want the 1 this Store applied", len(got))
	}
	c := got[0]
	if c.Version != r.Version || c.OpID != "op-1" || c.Origin.Process != "p.one" || c.Origin.Attempts != 2 || c.Origin.Conflicts != 1 {
		t.Fatalf("Committed saw %+v, want version %d, op-1, p.one (2 attempts, 1 conflict)", c, r.Version)
	}
	if len(c.Changes) != 3 || c.Changes[0].Path != P("domain.a") || dec(t, c.Changes[0].Value) != 1 ||
		c.Changes[1].Path != P("domain.b") || !c.Changes[1].Deleted ||
		c.Changes[2].Root != P("domain.log_x") || c.Changes[2].Seq != 0 || c.Changes[2].Path != cas.EntryPath(P("domain.log_x"), 0) {
		t.Fatalf("changes %+v", c.Changes)
	}
}

// Config.Trace sees each ticket granted, and its end: by its holder's
// commit, or by Release.
func TestTicketTrace(t *testing.T) {
	var mu sync.Mutex
	var got []string
	s, err := etcdstore.New(etcdstore.Config{Client: client(t), Prefix: "t/" + t.Name() + "/", Trace: func(e vip.Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e.Kind.String()+" "+e.Owner+" "+strings.Join(e.Keys, ","))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tk, err := s.Acquire(bg, "one", []string{"domain.a"})
	if err != nil {
		t.Fatal(err)
	}
	var d cas.Delta
	d.Set(P("domain.a"), enc(1))
	commit(t, s, d, cas.Options{Held: tk})
	tk.Release() // ended by the commit already: no second event
	tk, err = s.Acquire(bg, "two", []string{"domain.b"})
	if err != nil {
		t.Fatal(err)
	}
	tk.Release()
	mu.Lock()
	defer mu.Unlock()
	want := []string{"granted one domain.a", "released one domain.a", "granted two domain.b", "released two domain.b"}
	if !slices.Equal(got, want) {
		t.Fatalf("traced %q, want %q", got, want)
	}
}
