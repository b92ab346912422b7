package cas_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

// TestTrainingCommitNeverConflicts: a commit from a stale snapshot, one
// whose history was trimmed, or under strict's rule, applies in training
// mode (last writer wins), where smart refuses it.
func TestTrainingCommitNeverConflicts(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.x", 1)
	stale := s.Version()
	set(t, s, "domain.x", 2)
	set(t, s, "domain.x", 3)
	s.Collect() // nothing holds stale: its history is trimmed
	var d cas.Delta
	d.Set(P("domain.x"), enc(10))
	reads := Ps("domain.x", "domain")
	var ce *cas.ConflictError
	if _, err := s.Commit(bg, stale, reads, d, cas.Options{Mode: cas.Smart}); !errors.As(err, &ce) {
		t.Fatalf("smart from a stale snapshot: %v, want a conflict", err)
	}
	r, err := s.Commit(bg, stale, reads, d, cas.Options{Mode: cas.Training, OpID: "op-1"})
	if err != nil {
		t.Fatalf("training from a stale snapshot: %v, want no conflict", err)
	}
	if v, _ := get(t, s, "domain.x"); v != 10 || r.Version != 4 {
		t.Fatalf("domain.x = %d at version %d, want 10 at 4", v, r.Version)
	}
	// An op id still applies once.
	d = nil
	d.Set(P("domain.x"), enc(20))
	r, err = s.Commit(bg, 0, reads, d, cas.Options{Mode: cas.Training, OpID: "op-1"})
	if err != nil || !r.Duplicate || r.Version != 4 {
		t.Fatalf("repeat of op-1: %+v, %v; want the first commit's outcome", r, err)
	}
	if _, err := s.Commit(bg, s.Version()+1, nil, d, cas.Options{Mode: cas.Training}); !errors.Is(err, cas.ErrFutureSnap) {
		t.Fatalf("a snapshot from the future: %v, want ErrFutureSnap", err)
	}
}

// TestTrainingRunnerLastWriterWins: concurrent read-modify-writes in
// training mode each run once, none conflicts or takes a ticket, and the
// final value is one of the writes (updates may be lost: that is the
// mode's bargain).
func TestTrainingRunnerLastWriterWins(t *testing.T) {
	const n = 32
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s, Arbiter: vip.New(vip.Config{}), Mode: cas.Training, VIPAfter: 1}
	c := mustContract(t, "counter.add", []string{"domain.counter"}, []string{"domain.counter"}, contract.Pure)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			rep, err := r.Call(bg, c, "", incr(t, "domain.counter"))
			if err != nil {
				t.Error(err)
				return
			}
			if rep.Attempts != 1 || rep.Conflicts != 0 || rep.VIP {
				t.Errorf("report %+v: want one attempt, no conflict, no ticket", rep)
			}
		})
	}
	close(start)
	wg.Wait()
	v, ok := get(t, s, "domain.counter")
	if !ok || v < 1 || v > n {
		t.Fatalf("counter = %d (%v), want one of the writes, 1..%d", v, ok, n)
	}
	if s.Version() != n {
		t.Fatalf("version %d, want %d: every call commits", s.Version(), n)
	}
}

// TestTrainingReleasesSnapshotBeforeCommit: in training the attempt's
// snapshot is not held through the commit, so the value it read is
// dropped by that very commit; smart holds it until the commit is done.
func TestTrainingReleasesSnapshotBeforeCommit(t *testing.T) {
	for _, tt := range []struct {
		mode        cas.Mode
		wantDropped bool
	}{
		{mode: cas.Smart, wantDropped: false},
		{mode: cas.Training, wantDropped: true},
	} {
		t.Run(tt.mode.String(), func(t *testing.T) {
			var dropped []string
			s := cas.New(cas.Config{
				Watch:   func(contract.Path) bool { return true },
				Dropped: func(p contract.Path, v []byte) { dropped = append(dropped, string(p)) },
			})
			set(t, s, "domain.counter", 1)
			r := &cas.Runner{Store: s, Mode: tt.mode}
			c := mustContract(t, "counter.add", []string{"domain.counter"}, []string{"domain.counter"}, contract.Pure)
			if _, err := r.Call(bg, c, "", incr(t, "domain.counter")); err != nil {
				t.Fatal(err)
			}
			during := dropped // what the commit itself dropped: nothing has collected since
			if got := len(during) > 0; got != tt.wantDropped {
				t.Fatalf("dropped by the commit: %v; want dropped %v", during, tt.wantDropped)
			}
		})
	}
}
