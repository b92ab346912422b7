package etcdstore_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/protocol"
)

// TestSetDeleteSubtree: values set through one member are read through
// another at the commit's revision; a delete removes the value, and a
// view's subtree is exactly the paths under it (domain.a-b is not under
// domain.a).
func TestSetDeleteSubtree(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	var d cas.Delta
	d.Set(P("domain.a"), []byte("0"))
	d.Set(P("domain.a.x"), []byte("1"))
	d.Set(P("domain.a-b"), []byte("2"))
	r := commit(t, a, d, cas.Options{})
	sn, err := b.View(bg, []contract.Path{P("domain.a")})
	if err != nil {
		t.Fatal(err)
	}
	if sn.Version() < r.Version {
		t.Fatalf("a view after the commit is at %d < %d", sn.Version(), r.Version)
	}
	var got []string
	for _, e := range sn.Subtree(P("domain.a")) {
		got = append(got, string(e.Path)+"="+string(e.Value))
		if e.Version != r.Version {
			t.Errorf("%s: version %d, want %d", e.Path, e.Version, r.Version)
		}
	}
	if !slices.Equal(got, []string{"domain.a=0", "domain.a.x=1"}) {
		t.Fatalf("subtree = %v", got)
	}
	var del cas.Delta
	del.Delete(P("domain.a.x"))
	r2 := commit(t, b, del, cas.Options{}, P("domain.a"))
	if r2.Version <= r.Version {
		t.Fatalf("versions %d then %d", r.Version, r2.Version)
	}
	if _, ok := get(t, a, P("domain.a.x")); ok {
		t.Fatal("a deleted value is still read")
	}
	if v, ok := get(t, a, P("domain.a-b")); !ok || string(v) != "2" {
		t.Fatalf("domain.a-b = %q, %v", v, ok)
	}
}

// TestSubtreeReadSeesDelete: a commit that read a subtree conflicts with
// a delete under it since its snapshot, made through another store. A
// compare on the values' prefix would not see it (a deleted key has no
// revision): the subtree stamps do.
func TestSubtreeReadSeesDelete(t *testing.T) {
	a, b := store(t, 0), store(t, 2)
	var d cas.Delta
	d.Set(P("domain.acct.x"), []byte("5"))
	d.Set(P("domain.acct.y"), []byte("5"))
	commit(t, a, d, cas.Options{})
	sn, err := a.View(bg, []contract.Path{P("domain.acct")})
	if err != nil {
		t.Fatal(err)
	}
	var del cas.Delta
	del.Delete(P("domain.acct.y"))
	commit(t, b, del, cas.Options{})
	var w cas.Delta
	w.Set(P("domain.total"), []byte("10"))
	_, err = a.Commit(bg, sn.Version(), []contract.Path{P("domain.acct")}, w, cas.Options{})
	var ce *cas.ConflictError
	if !errors.As(err, &ce) || !slices.Equal(ce.Paths, []contract.Path{P("domain.acct")}) {
		t.Fatalf("commit after a delete under its read: %v", err)
	}
	if _, ok := get(t, a, P("domain.total")); ok {
		t.Fatal("a conflicting commit applied")
	}
	// A read elsewhere does not conflict.
	if _, err := a.Commit(bg, sn.Version(), []contract.Path{P("domain.other")}, w, cas.Options{}); err != nil {
		t.Fatalf("a commit that read nothing that changed: %v", err)
	}
}

// TestWriteWriteConflict: two commits from one snapshot that set the same
// path: the second conflicts (first committer wins), across stores.
func TestWriteWriteConflict(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	sn, err := a.View(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var d cas.Delta
	d.Set(P("domain.k"), []byte("a"))
	if _, err := a.Commit(bg, sn.Version(), nil, d, cas.Options{}); err != nil {
		t.Fatal(err)
	}
	d[0].Value = []byte("b")
	if _, err := b.Commit(bg, sn.Version(), nil, d, cas.Options{}); !isConflict(err) {
		t.Fatalf("second blind write from the same snapshot: %v", err)
	}
	if v, _ := get(t, b, P("domain.k")); string(v) != "a" {
		t.Fatalf("domain.k = %q", v)
	}
}

// TestStrictAndTraining: strict conflicts with any commit since the
// snapshot; training never conflicts.
func TestStrictAndTraining(t *testing.T) {
	a, b := store(t, 0), store(t, 1)
	sn, err := a.View(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var other cas.Delta
	other.Set(P("domain.elsewhere"), []byte("1"))
	commit(t, b, other, cas.Options{})
	var d cas.Delta
	d.Set(P("domain.mine"), []byte("1"))
	if _, err := a.Commit(bg, sn.Version(), nil, d, cas.Options{Mode: cas.Strict}); !isConflict(err) {
		t.Fatalf("strict commit after an unrelated commit: %v", err)
	}
	if _, err := a.Commit(bg, sn.Version(), nil, d, cas.Options{Mode: cas.Smart}); err != nil {
		t.Fatalf("smart commit after an unrelated commit: %v", err)
	}
	d[0].Value = []byte("2")
	if _, err := b.Commit(bg, sn.Version(), []contract.Path{P("domain")}, d, cas.Options{Mode: cas.Training}); err != nil {
		t.Fatalf("training commit: %v", err)
	}
	if v, _ := get(t, a, P("domain.mine")); string(v) != "2" {
		t.Fatalf("domain.mine = %q after the training commit", v)
	}
}

// TestPrivateStampsStopAtTheirRoot: a PRIVATE write does not conflict with
// a read of the ancestors of its PRIVATE root, as in cas.
func TestPrivateStampsStopAtTheirRoot(t *testing.T) {
	a := store(t, 0)
	sn, err := a.View(bg, []contract.Path{P("global")})
	if err != nil {
		t.Fatal(err)
	}
	var rec cas.Delta
	rec.Set(P("global.internal_runs.r1"), []byte("{}"))
	commit(t, a, rec, cas.Options{})
	var d cas.Delta
	d.Set(P("domain.x"), []byte("1"))
	if _, err := a.Commit(bg, sn.Version(), []contract.Path{P("global")}, d, cas.Options{}); err != nil {
		t.Fatalf("a read of global conflicted with a PRIVATE record: %v", err)
	}
	sn2, err := a.View(bg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec[0].Value = []byte("{1}")
	commit(t, a, rec, cas.Options{})
	if _, err := a.Commit(bg, sn2.Version(), []contract.Path{P("global.internal_runs")}, d, cas.Options{}); !isConflict(err) {
		t.Fatalf("a read of the PRIVATE root itself missed a change under it: %v", err)
	}
}

// TestOpIDAtMostOnceAcrossStores: eight commits of one op id through
// three stores on three members: exactly one applies, the others get its
// version and result; another call's digest is refused.
func TestOpIDAtMostOnceAcrossStores(t *testing.T) {
	stores := []*etcdstore.Store{store(t, 0), store(t, 1), store(t, 2)}
	dg := cas.OpDigest{1}
	var wg sync.WaitGroup
	results := make([]cas.Result, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			var d cas.Delta
			d.Append(P("domain.log_paid"), fmt.Appendf(nil, "%d", i))
			results[i], errs[i] = stores[i%3].Commit(bg, 0, nil, d, cas.Options{Mode: cas.Training, OpID: "pay-1", OpDigest: dg, Result: fmt.Appendf(nil, "r%d", i)})
		})
	}
	wg.Wait()
	firsts := 0
	for i := range 8 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !results[i].Duplicate {
			firsts++
		}
	}
	if firsts != 1 {
		t.Fatalf("%d commits of one op id applied", firsts)
	}
	sn, err := stores[0].View(bg, []contract.Path{P("domain.log_paid")})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sn.Subtree(P("domain.log_paid"))); n != 1 {
		t.Fatalf("%d entries appended by one op id", n)
	}
	v, res, ok, err := stores[1].LookupOp(bg, "pay-1", dg)
	if err != nil || !ok || v != results[0].Version || !strings.HasPrefix(string(res), "r") {
		t.Fatalf("LookupOp = %d %q %v %v", v, res, ok, err)
	}
	for i := range 8 {
		if results[i].Version != v || string(results[i].Result) != string(res) && results[i].Duplicate {
			t.Fatalf("commit %d: %+v, want version %d result %q", i, results[i], v, res)
		}
	}
	var d cas.Delta
	d.Set(P("domain.x"), []byte("1"))
	_, err = stores[2].Commit(bg, 0, nil, d, cas.Options{Mode: cas.Training, OpID: "pay-1", OpDigest: cas.OpDigest{2}})
	if !errors.Is(err, cas.ErrOpIDConflict) {
		t.Fatalf("op id reused for another call: %v", err)
	}
	if _, _, _, err := stores[2].LookupOp(bg, "pay-1", cas.OpDigest{2}); !errors.Is(err, cas.ErrOpIDConflict) {
		t.Fatalf("LookupOp with another digest: %v", err)
	}
}

// TestAppendsCommute: concurrent appends to one log through three stores
// never conflict, and number their entries 0..n-1 with no gap or repeat.
func TestAppendsCommute(t *testing.T) {
	stores := []*etcdstore.Store{store(t, 0), store(t, 1), store(t, 2)}
	const each, writers = 10, 6
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				var d cas.Delta
				d.Append(P("domain.log_ev"), fmt.Appendf(nil, "%d-%d", g, i))
				d.Append(P("domain.log_ev"), fmt.Appendf(nil, "%d-%d+", g, i))
				if _, err := stores[g%3].Commit(bg, 0, nil, d, cas.Options{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	sn, err := stores[0].View(bg, []contract.Path{P("domain.log_ev")})
	if err != nil {
		t.Fatal(err)
	}
	es := sn.Subtree(P("domain.log_ev"))
	if len(es) != 2*each*writers {
		t.Fatalf("%d entries, want %d", len(es), 2*each*writers)
	}
	for i, e := range es {
		if e.Path != cas.EntryPath(P("domain.log_ev"), uint64(i)) {
			t.Fatalf("entry %d is at %s", i, e.Path)
		}
		if i%2 == 1 && string(e.Value) != string(es[i-1].Value)+"+" {
			t.Fatalf("one delta's two appends are not adjacent: %q then %q", es[i-1].Value, e.Value)
		}
	}
}

// TestTooLargeIsBadRequest: a delta over etcd's operations or bytes per
// Txn is refused before it is sent, as a bad_request, and changes nothing.
func TestTooLargeIsBadRequest(t *testing.T) {
	a := store(t, 0)
	before, err := a.Version(bg)
	if err != nil {
		t.Fatal(err)
	}
	var many cas.Delta
	for i := range 200 {
		many.Set(P(fmt.Sprintf("domain.k%d", i)), []byte("1"))
	}
	big := cas.Delta{{Path: P("domain.big"), Op: contract.OpSet, Value: make([]byte, 2<<20)}}
	for name, d := range map[string]cas.Delta{"200 writes": many, "2 MiB": big} {
		_, err := a.Commit(bg, before, nil, d, cas.Options{})
		var le *etcdstore.LimitError
		var pe *protocol.Error
		if !errors.As(err, &le) || !errors.As(err, &pe) || pe.Code != protocol.CodeBadRequest {
			t.Fatalf("%s: %v, want a LimitError that is a bad_request", name, err)
		}
	}
	if sn, err := a.View(bg, []contract.Path{P("domain")}); err != nil || len(sn.Subtree(P("domain"))) != 0 {
		t.Fatalf("a refused delta wrote something: %v", err)
	}
	var bad cas.Delta
	bad.Set("domain..x", []byte("1"))
	if _, err := a.Commit(bg, before, nil, bad, cas.Options{}); !errors.Is(err, cas.ErrInvalidDelta) {
		t.Fatalf("invalid path: %v", err)
	}
}

// TestClosedClientNeverAcks: a commit through a client whose connections
// are gone is an error that says etcd did not answer, never a success,
// and a view is one too.
func TestClosedClientNeverAcks(t *testing.T) {
	c := client(t, 0)
	s, err := etcdstore.New(etcdstore.Config{Client: c, Prefix: "t/" + t.Name() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	var d cas.Delta
	d.Set(P("domain.x"), []byte("1"))
	if _, err := s.Commit(bg, 0, nil, d, cas.Options{Mode: cas.Training}); !errors.Is(err, etcdstore.ErrUnavailable) {
		t.Fatalf("commit on a closed client: %v", err)
	}
	if _, err := s.View(bg, nil); !errors.Is(err, etcdstore.ErrUnavailable) {
		t.Fatalf("view on a closed client: %v", err)
	}
	if _, ok := get(t, store(t, 1), P("domain.x")); ok {
		t.Fatal("the refused commit applied")
	}
}
