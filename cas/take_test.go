package cas_test

import (
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// TestSnapshotWaitsOutTheGatedCommit: while a VIP ticket is held, a
// snapshot waits for the commit in progress, which passed the gate before
// the grant, and sees it. The commit is held between its gate and its
// publish (in Watch, which a commit calls as it creates a path); a
// snapshot that did not wait would see the version before it.
func TestSnapshotWaitsOutTheGatedCommit(t *testing.T) {
	inside, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	arb := vip.New(vip.Config{})
	s := cas.New(cas.Config{
		Arbiter: arb,
		Dropped: func(contract.Path, []byte) {},
		Watch: func(p contract.Path) bool {
			if p == "domain.x" {
				once.Do(func() { close(inside); <-proceed })
			}
			return false
		},
	})
	committed := make(chan error, 1)
	go func() {
		var d cas.Delta
		d.Set(P("domain.x"), enc(1))
		_, err := s.Commit(bg, 0, nil, d, cas.Options{})
		committed <- err
	}()
	<-inside
	tk, err := arb.Acquire(bg, "other", []string{"domain.y"})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Release()
	started, seen := make(chan struct{}), make(chan cas.Version, 1)
	go func() {
		close(started)
		sn := s.Snapshot()
		seen <- sn.Version()
		sn.Release()
	}()
	<-started
	select {
	case v := <-seen:
		t.Fatalf("a snapshot taken during the gated commit returned at once, at version %d", v)
	case <-time.After(50 * time.Millisecond):
	}
	close(proceed)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if v := <-seen; v != 1 {
		t.Fatalf("the snapshot sees version %d, want 1 (the commit it waited for)", v)
	}
}

// TestGateWaitsForEveryHolder: a commit over two keys, each under a
// ticket of its own, waits at the VIP gate for the first ticket it finds,
// and when that one ends, for the other: it commits only after both.
func TestGateWaitsForEveryHolder(t *testing.T) {
	arb := vip.New(vip.Config{})
	s := cas.New(cas.Config{Arbiter: arb})
	tx, err := arb.Acquire(bg, "x", []string{"domain.x"})
	if err != nil {
		t.Fatal(err)
	}
	ty, err := arb.Acquire(bg, "y", []string{"domain.y"})
	if err != nil {
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	go func() {
		var d cas.Delta
		d.Set(P("domain.x"), enc(1))
		d.Set(P("domain.y"), enc(1))
		_, err := s.Commit(bg, 0, nil, d, cas.Options{})
		committed <- err
	}()
	for _, tk := range []*vip.Ticket{tx, ty} {
		select {
		case err := <-committed:
			t.Fatalf("the commit went through while %s's ticket was held (%v)", tk.Owner(), err)
		case <-time.After(30 * time.Millisecond):
		}
		tk.Release()
	}
	if err := <-committed; err != nil || s.Version() != 1 {
		t.Fatalf("after both tickets: %v at version %d", err, s.Version())
	}
}
