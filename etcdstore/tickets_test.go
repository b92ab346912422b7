package etcdstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/protocol"
)

func set(p string, v int64) cas.Delta {
	var d cas.Delta
	d.Set(P(p), enc(v))
	return d
}

// tryCommit commits d from a fresh view of reads, returning the error.
func tryCommit(s *etcdstore.Store, d cas.Delta, opts cas.Options, reads ...contract.Path) error {
	sn, err := s.View(bg, reads)
	if err != nil {
		return err
	}
	_, err = s.Commit(bg, sn.Version(), reads, d, opts)
	return err
}

// A ticket held through one store blocks every other store's commit that
// writes at, above or below its key, and no other; a second ticket on an
// overlapping key waits; the holder commits, which ends its ticket.
func TestTicketGate(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	tk, err := a.Acquire(bg, "a", []string{"domain.k"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"domain.k", "domain", "domain.k.sub"} {
		err := tryCommit(b, set(p, 1), cas.Options{})
		var ce *cas.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("commit to %s while another holds domain.k: %v, want a conflict", p, err)
		}
		if _, ok := get(t, b, P(p)); ok {
			t.Fatalf("%s was written", p)
		}
	}
	if err := tryCommit(b, set("domain.other", 1), cas.Options{}); err != nil {
		t.Fatalf("a commit beside the ticket: %v", err)
	}
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	if _, err := b.Acquire(ctx, "b", []string{"domain"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an overlapping ticket: %v, want to wait (deadline exceeded)", err)
	}
	cancel()
	if err := tryCommit(a, set("domain.k", 7), cas.Options{Held: tk}, P("domain.k")); err != nil {
		t.Fatalf("the holder's commit: %v", err)
	}
	if tk.Valid() {
		t.Fatal("the ticket is valid after its holder's commit")
	}
	tk2, err := b.Acquire(bg, "b", []string{"domain"})
	if err != nil {
		t.Fatal(err)
	}
	tk2.Release()
	if err := tryCommit(b, set("domain.k", 8), cas.Options{}); err != nil {
		t.Fatalf("a commit after the ticket ended: %v", err)
	}
}

// A holder that dies (its client gone, its lease no longer kept alive)
// loses its ticket after the TTL: another store takes it and commits.
func TestTicketExpiresWithHolder(t *testing.T) {
	dead := client(t, 0)
	a, err := etcdstore.New(etcdstore.Config{Client: dead, Prefix: "t/" + t.Name() + "/", TicketTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b := store(t, 1)
	if _, err := a.Acquire(bg, "a", []string{"domain.k"}); err != nil {
		t.Fatal(err)
	}
	dead.Close() // no revoke: the lease must run out
	ctx, cancel := context.WithTimeout(bg, time.Minute)
	defer cancel()
	tk, err := b.Acquire(ctx, "b", []string{"domain.k"})
	if err != nil {
		t.Fatalf("the dead holder's ticket never expired: %v", err)
	}
	if err := tryCommit(b, set("domain.k", 1), cas.Options{Held: tk}, P("domain.k")); err != nil {
		t.Fatal(err)
	}
}

// Close ends the store's tickets at once.
func TestTicketCloseReleases(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	if _, err := a.Acquire(bg, "a", []string{"domain.k"}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	tk, err := b.Acquire(ctx, "b", []string{"domain.k"})
	if err != nil {
		t.Fatal(err)
	}
	tk.Release()
}

// A hot key through two stores, with the Runner's tickets: every commit
// takes at most VIPAfter+1 attempts (its ticket, taken after VIPAfter
// conflicts, makes the next attempt win across both stores).
func TestHotKeyBoundAcrossStores(t *testing.T) {
	stores := []*etcdstore.Store{store(t, 0), store(t, 1)}
	const clients, each = 8, 10
	key := "domain.hot"
	c := mustContract(t, "inc", []string{key}, []string{key})
	var conflicts, worst atomic.Int64
	var wg sync.WaitGroup
	for g := range clients {
		r := &cas.Runner{Engine: stores[g%2], Mode: cas.Smart}
		wg.Go(func() {
			for range each {
				rep, err := r.Call(bg, c, "", func(_ context.Context, v cas.View) (cas.Outcome, error) {
					b, _, err := v.Get(P(key))
					if err != nil {
						return cas.Outcome{}, err
					}
					var dl cas.Delta
					dl.Set(P(key), enc(dec(t, b)+1))
					return cas.Outcome{Delta: dl}, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				conflicts.Add(int64(rep.Conflicts))
				for w := worst.Load(); int64(rep.Attempts) > w && !worst.CompareAndSwap(w, int64(rep.Attempts)); w = worst.Load() {
				}
			}
		})
	}
	wg.Wait()
	v, _ := get(t, stores[0], P(key))
	if got := dec(t, v); got != clients*each {
		t.Fatalf("counter %d, want %d", got, clients*each)
	}
	if w := worst.Load(); w > cas.DefaultVIPAfter+1 {
		t.Fatalf("a commit took %d attempts, over VIPAfter+1 = %d", w, cas.DefaultVIPAfter+1)
	}
	t.Logf("%.2f conflicts per commit, at most %d attempts", float64(conflicts.Load())/(clients*each), worst.Load())
}

// A ticket asked of a store whose client was closed is a not_durable
// (etcd unreachable), not the caller's cancel: the caller canceled
// nothing.
func TestTicketClosedClient(t *testing.T) {
	c := client(t, 0)
	s, err := etcdstore.New(etcdstore.Config{Client: c, Prefix: "t/" + t.Name() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = s.Acquire(bg, "a", []string{"domain.k"})
	var pe *protocol.Error
	if !errors.Is(err, etcdstore.ErrUnavailable) || errors.Is(err, context.Canceled) || !errors.As(err, &pe) || pe.Code != protocol.CodeNotDurable {
		t.Fatalf("a ticket through a closed client: %v, want etcd unavailable (not_durable), not canceled", err)
	}
}

// A ticket holder's commit whose only failed compare is a log counter
// that moved (another append came first) is sent again with the next
// entry number and commits as the holder: the ticket is not taken for
// lost (its key read back names the holder's lease).
func TestHolderRetriesMovedLog(t *testing.T) {
	c := client(t)
	a, err := etcdstore.New(etcdstore.Config{Client: c, Prefix: "t/" + t.Name() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	var first cas.Delta
	first.Append(P("domain.log_x"), []byte("0"))
	if err := tryCommit(a, first, cas.Options{}); err != nil {
		t.Fatal(err)
	}
	tk, err := a.Acquire(bg, "a", []string{"domain.log_x"})
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	etcdstore.SetBeforeTxn(a, func() {
		if moved > 0 {
			return
		}
		moved++
		// What another append does to the counter: a new revision.
		key := "t/" + t.Name() + "/q/domain.log_x."
		if _, err := c.Put(bg, key, "1"); err != nil {
			t.Error(err)
		}
	})
	var d cas.Delta
	d.Append(P("domain.log_x"), []byte("1"))
	if err := tryCommit(a, d, cas.Options{Held: tk}); err != nil {
		t.Fatalf("the holder's append after a log moved: %v", err)
	}
	if moved != 1 {
		t.Fatalf("the counter was moved %d times, want 1", moved)
	}
	if tk.Valid() {
		t.Fatal("the ticket is valid after its holder's commit")
	}
}
