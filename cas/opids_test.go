package cas_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/vip"
)

func digest(s string) cas.OpDigest { return sha256.Sum256([]byte(s)) }

// incrAttempt adds one to the int at p, reading the snapshot directly, and
// counts its runs in runs.
func incrAttempt(t testing.TB, p string, result string, runs *atomic.Int32) cas.Attempt {
	return func(_ context.Context, snap *cas.Snapshot, _ int) (cas.Outcome, error) {
		runs.Add(1)
		var n int64
		if e, ok := snap.Get(P(p)); ok {
			n = dec(t, e.Value)
		}
		var d cas.Delta
		d.Set(P(p), enc(n+1))
		return cas.Outcome{Delta: d, Result: []byte(result)}, nil
	}
}

// An op id is bound to the digest of its first commit: the same call again
// is a duplicate with the first result; another call (another digest) is
// refused with an *OpIDConflictError and applies nothing; an unknown digest
// on either side is accepted as a repeat, as before digests.
func TestOpIDDigest(t *testing.T) {
	s := cas.New(cas.Config{OpIDWindow: 2})
	a, b := digest("add 1"), digest("add 2")
	incr := func(id string, d cas.OpDigest, result string) (cas.Result, error) {
		t.Helper()
		n, _ := get(t, s, "domain.x")
		var delta cas.Delta
		delta.Set(P("domain.x"), enc(n+1))
		return s.Commit(bg, s.Version(), Ps("domain.x"), delta, cas.Options{OpID: id, OpDigest: d, Result: []byte(result)})
	}
	r1, err := incr("op-1", a, "first")
	if err != nil || r1.Duplicate {
		t.Fatalf("first: %+v %v", r1, err)
	}
	if r, err := incr("op-1", a, "second"); err != nil || !r.Duplicate || r.Version != r1.Version || string(r.Result) != "first" {
		t.Fatalf("the same call again: %+v %v", r, err)
	}
	before := s.Version()
	_, err = incr("op-1", b, "other")
	var ce *cas.OpIDConflictError
	if !errors.Is(err, cas.ErrOpIDConflict) || !errors.As(err, &ce) || ce.OpID != "op-1" || ce.Version != r1.Version {
		t.Fatalf("another call with op-1: %v, want an *OpIDConflictError at version %d", err, r1.Version)
	}
	if errors.Is(err, cas.ErrConflict) {
		t.Fatal("an op id conflict must not read as a CAS conflict (a Runner would retry it)")
	}
	if v, _ := get(t, s, "domain.x"); v != 1 || s.Version() != before {
		t.Fatalf("the refused call changed the store: x = %d, version %d, want 1, %d", v, s.Version(), before)
	}
	if _, res, ok, err := s.LookupOp("op-1", b); ok || err == nil || res != nil {
		t.Fatalf("LookupOp with another digest: %v %v", ok, err)
	}
	if v, res, ok, err := s.LookupOp("op-1", a); !ok || err != nil || v != r1.Version || string(res) != "first" {
		t.Fatalf("LookupOp with the digest: %d %s %v %v", v, res, ok, err)
	}
	// Unknown digests match anything.
	if r, err := incr("op-1", cas.OpDigest{}, "x"); err != nil || !r.Duplicate {
		t.Fatalf("no digest given: %+v %v", r, err)
	}
	if _, err := incr("op-0", cas.OpDigest{}, "no digest"); err != nil {
		t.Fatal(err)
	}
	if r, err := incr("op-0", b, "x"); err != nil || !r.Duplicate || string(r.Result) != "no digest" {
		t.Fatalf("recorded without a digest, repeated with one: %+v %v", r, err)
	}
	// Out of the window (2 ids), an id is new again, whatever its digest.
	if _, err := incr("op-2", a, ""); err != nil {
		t.Fatal(err)
	}
	if r, err := incr("op-1", b, "reused"); err != nil || r.Duplicate {
		t.Fatalf("op-1 reused after it left the window: %+v %v", r, err)
	}
}

// N goroutines run one op id at once through a Runner, half of them as
// another call: exactly one commit applies; every other call of the
// winner's digest is a duplicate with its result, every call of the other
// digest is an op id conflict. Every first run waits until all have
// started, so all pass the Runner's early look-up and the check at commit
// (under the store's lock) decides.
func TestOpIDDigestConcurrent(t *testing.T) {
	const n = 16
	for _, arb := range []bool{false, true} {
		for round := range 10 {
			s := cas.New(cas.Config{})
			r := &cas.Runner{Store: s}
			if arb {
				r.Arbiter, r.Optimistic = vip.New(vip.Config{}), true
			}
			c := mustContract(t, "counter.add", []string{"domain.counter"}, []string{"domain.counter"}, contract.Pure)
			digests := [2]cas.OpDigest{digest("call a"), digest("call b")}
			var applied, dups, conflicts [2]atomic.Int32
			var runs, started atomic.Int32
			all := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				k := i % 2
				run := incrAttempt(t, "domain.counter", string(rune('a'+k)), &runs)
				wg.Go(func() {
					rep, err := r.Execute(bg, cas.Invocation{
						Contract: c, OpID: "same-op", OpDigest: digests[k], Owner: "local",
						Run: func(ctx context.Context, snap *cas.Snapshot, attempt int) (cas.Outcome, error) {
							if attempt == 1 {
								if started.Add(1) == n {
									close(all)
								}
								<-all
							}
							return run(ctx, snap, attempt)
						},
					})
					switch {
					case errors.Is(err, cas.ErrOpIDConflict):
						conflicts[k].Add(1)
					case err != nil:
						t.Errorf("call %d: %v", i, err)
					case string(rep.Result) != string(rune('a'+k)):
						t.Errorf("call %d (%c) got result %q", i, 'a'+k, rep.Result)
					case rep.Duplicate:
						dups[k].Add(1)
					default:
						applied[k].Add(1)
					}
				})
			}
			wg.Wait()
			if v, _ := get(t, s, "domain.counter"); v != 1 || s.Version() != 1 {
				t.Fatalf("arbiter %v, round %d: counter %d at version %d, want one commit", arb, round, v, s.Version())
			}
			w := 0
			if applied[1].Load() == 1 {
				w = 1
			}
			if applied[w].Load() != 1 || applied[1-w].Load() != 0 || dups[w].Load() != n/2-1 || conflicts[1-w].Load() != n/2 ||
				dups[1-w].Load() != 0 || conflicts[w].Load() != 0 {
				t.Fatalf("arbiter %v, round %d: applied %d/%d, duplicates %d/%d, conflicts %d/%d", arb, round,
					applied[0].Load(), applied[1].Load(), dups[0].Load(), dups[1].Load(), conflicts[0].Load(), conflicts[1].Load())
			}
		}
	}
}

// A Runner refuses a conflicting op id before running anything, for a
// read-only process too (its run would commit nothing, and a repeat of it
// is a duplicate today: another call is refused the same way).
func TestRunnerOpIDConflictRunsNothing(t *testing.T) {
	s := cas.New(cas.Config{})
	r := &cas.Runner{Store: s}
	c := mustContract(t, "counter.add", []string{"domain.counter"}, []string{"domain.counter"}, contract.Pure)
	ro := mustContract(t, "counter.get", []string{"domain.counter"}, nil, contract.Pure)
	var runs atomic.Int32
	exec := func(c contract.Contract, d cas.OpDigest, run cas.Attempt) (cas.Report, error) {
		return r.Execute(bg, cas.Invocation{Contract: c, OpID: "op", OpDigest: d, Run: run})
	}
	if _, err := exec(c, digest("add"), incrAttempt(t, "domain.counter", "", &runs)); err != nil {
		t.Fatal(err)
	}
	read := func(context.Context, *cas.Snapshot, int) (cas.Outcome, error) {
		runs.Add(1)
		return cas.Outcome{Result: []byte("read")}, nil
	}
	_, err := exec(ro, digest("get"), read)
	var re *cas.RunError
	if !errors.Is(err, cas.ErrOpIDConflict) || !errors.As(err, &re) || re.Process != "counter.get" || re.Attempts != 0 {
		t.Fatalf("a read-only call with a used op id: %v, want an op id conflict after 0 attempts", err)
	}
	if _, err := exec(c, digest("add 2"), incrAttempt(t, "domain.counter", "", &runs)); !errors.Is(err, cas.ErrOpIDConflict) {
		t.Fatalf("other args: %v", err)
	}
	if rep, err := exec(c, digest("add"), incrAttempt(t, "domain.counter", "", &runs)); err != nil || !rep.Duplicate {
		t.Fatalf("the same call again: %+v %v", rep, err)
	}
	if runs.Load() != 1 || s.Version() != 1 {
		t.Fatalf("%d runs, version %d: want 1 and 1", runs.Load(), s.Version())
	}
}

// The digest travels with the op id through Export and Restore, and
// through the Commit a journal records.
func TestOpIDDigestRestored(t *testing.T) {
	var commits []cas.Commit
	s := cas.New(cas.Config{Committed: func(c cas.Commit) { commits = append(commits, c) }})
	var d cas.Delta
	d.Set(P("domain.x"), enc(1))
	if _, err := s.Commit(bg, 0, nil, d, cas.Options{OpID: "op", OpDigest: digest("a"), Result: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	if len(commits) != 1 || commits[0].OpDigest != digest("a") {
		t.Fatalf("the journal got %+v", commits)
	}
	st := s.Export()
	if len(st.OpIDs) != 1 || st.OpIDs[0].Digest != digest("a") {
		t.Fatalf("exported %+v", st.OpIDs)
	}
	got, err := cas.Restore(cas.Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := got.Commit(bg, got.Version(), nil, d, cas.Options{OpID: "op", OpDigest: digest("b")}); !errors.Is(err, cas.ErrOpIDConflict) {
		t.Fatalf("another call after a restore: %v", err)
	}
	if r, err := got.Commit(bg, got.Version(), nil, d, cas.Options{OpID: "op", OpDigest: digest("a")}); err != nil || !r.Duplicate || string(r.Result) != "r" {
		t.Fatalf("the same call after a restore: %+v %v", r, err)
	}
}
