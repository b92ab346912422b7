package cas_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// Ported from Theus: smart mode lets a stale snapshot commit to a path
// nobody touched; strict mode rejects it.
func TestStaleSnapshotSmartVsStrict(t *testing.T) {
	for _, mode := range []cas.Mode{cas.Smart, cas.Strict} {
		t.Run(mode.String(), func(t *testing.T) {
			s := cas.New(cas.Config{})
			set(t, s, "domain.a", 1)
			snap := s.Snapshot()
			defer snap.Release()
			set(t, s, "domain.b", 1) // someone else moves the store on
			var d cas.Delta
			d.Set(P("domain.a"), enc(2))
			_, err := s.Commit(bg, snap.Version(), Ps("domain.a"), d, cas.Options{Mode: mode})
			if mode == cas.Smart && err != nil {
				t.Fatalf("smart: untouched path must commit: %v", err)
			}
			if mode == cas.Strict && !errors.Is(err, cas.ErrConflict) {
				t.Fatalf("strict: want conflict, got %v", err)
			}
		})
	}
}

// Ported from Theus: a same-path conflict is rejected and the other
// writer's value survives.
func TestSamePathConflict(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.x", 0)
	a, b := s.Snapshot(), s.Snapshot()
	defer a.Release()
	defer b.Release()
	var da, db cas.Delta
	da.Set(P("domain.x"), enc(1))
	db.Set(P("domain.x"), enc(2))
	if _, err := s.Commit(bg, a.Version(), Ps("domain.x"), da, cas.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Commit(bg, b.Version(), Ps("domain.x"), db, cas.Options{})
	var ce *cas.ConflictError
	if !errors.As(err, &ce) || len(ce.Paths) != 1 || ce.Paths[0] != "domain.x" {
		t.Fatalf("want conflict on domain.x, got %v", err)
	}
	if !strings.Contains(err.Error(), "domain.x") {
		t.Fatalf("error does not name the path: %v", err)
	}
	if v, _ := get(t, s, "domain.x"); v != 1 {
		t.Fatalf("first writer's value lost: %d", v)
	}
}

// A blind write (no read set) still conflicts on its write set.
func TestBlindWriteConflictsOnWriteSet(t *testing.T) {
	s := cas.New(cas.Config{})
	snap := s.Snapshot()
	defer snap.Release()
	set(t, s, "domain.x", 1)
	var d cas.Delta
	d.Set(P("domain.x"), enc(2))
	if _, err := s.Commit(bg, snap.Version(), nil, d, cas.Options{}); !errors.Is(err, cas.ErrConflict) {
		t.Fatalf("want conflict, got %v", err)
	}
}

// Ported from Theus: a reader's snapshot stays stable while commits land.
func TestSnapshotIsStable(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.acc.a", 10)
	set(t, s, "domain.acc.b", 20)
	snap := s.Snapshot()
	defer snap.Release()
	for i := range 100 {
		set(t, s, "domain.acc.a", int64(100+i))
		var d cas.Delta
		d.Delete(P("domain.acc.b"))
		d.Set(P("domain.acc.c"), enc(int64(i)))
		if _, err := s.Commit(bg, s.Version(), nil, d, cas.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	es := snap.Subtree(P("domain.acc"))
	if len(es) != 2 || es[0].Path != "domain.acc.a" || dec(t, es[0].Value) != 10 || dec(t, es[1].Value) != 20 {
		t.Fatalf("snapshot moved: %+v", es)
	}
	now := s.Snapshot()
	defer now.Release()
	if es := now.Subtree(P("domain.acc")); len(es) != 2 || es[1].Path != "domain.acc.c" {
		t.Fatalf("newest view wrong: %+v", es)
	}
}

// What Theus misses: write skew. Both read {A,B}; one writes A, the other B.
func TestWriteSkewIsRejected(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.oncall.alice", 1)
	set(t, s, "domain.oncall.bob", 1)
	a, b := s.Snapshot(), s.Snapshot()
	defer a.Release()
	defer b.Release()
	reads := Ps("domain.oncall.alice", "domain.oncall.bob")
	var da, db cas.Delta
	da.Set(P("domain.oncall.alice"), enc(0))
	db.Set(P("domain.oncall.bob"), enc(0))
	_, errA := s.Commit(bg, a.Version(), reads, da, cas.Options{})
	_, errB := s.Commit(bg, b.Version(), reads, db, cas.Options{})
	if (errA == nil) == (errB == nil) {
		t.Fatalf("exactly one must commit: %v / %v", errA, errB)
	}
	x, _ := get(t, s, "domain.oncall.alice")
	y, _ := get(t, s, "domain.oncall.bob")
	if x+y != 1 {
		t.Fatalf("invariant broken: alice=%d bob=%d", x, y)
	}
}

// A read of a subtree conflicts with a write anywhere inside it, and not
// with a write beside it.
func TestSubtreeReadConflicts(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.acc.a", 1)
	snap := s.Snapshot()
	defer snap.Release()
	set(t, s, "domain.acc.deep.x", 1)
	set(t, s, "domain.other", 1)
	var d cas.Delta
	d.Set(P("domain.total"), enc(1))
	if _, err := s.Commit(bg, snap.Version(), Ps("domain.other2", "domain.acc.a"), d, cas.Options{}); err != nil {
		t.Fatalf("reads untouched: %v", err)
	}
	_, err := s.Commit(bg, snap.Version(), Ps("domain.acc"), d, cas.Options{})
	var ce *cas.ConflictError
	if !errors.As(err, &ce) || ce.Paths[0] != "domain.acc" {
		t.Fatalf("want conflict on domain.acc, got %v", err)
	}
}

// Deletes commit and conflict like writes, and a deleted path reads absent.
func TestDeletes(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.x", 1)
	snap := s.Snapshot()
	defer snap.Release()
	var del cas.Delta
	del.Delete(P("domain.x"))
	if _, err := s.Commit(bg, s.Version(), Ps("domain.x"), del, cas.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := get(t, s, "domain.x"); ok || s.Len() != 0 {
		t.Fatal("deleted path still reads")
	}
	if e, ok := snap.Get(P("domain.x")); !ok || dec(t, e.Value) != 1 {
		t.Fatal("old snapshot lost the value")
	}
	// The delete conflicts with a reader of the old snapshot...
	var d cas.Delta
	d.Set(P("domain.y"), enc(1))
	if _, err := s.Commit(bg, snap.Version(), Ps("domain.x"), d, cas.Options{}); !errors.Is(err, cas.ErrConflict) {
		t.Fatalf("delete must conflict with a read: %v", err)
	}
	// ...and with another delete of the same path.
	if _, err := s.Commit(bg, snap.Version(), nil, del, cas.Options{}); !errors.Is(err, cas.ErrConflict) {
		t.Fatalf("delete must conflict with a delete: %v", err)
	}
}

// Bad input is refused with a typed error and changes nothing.
func TestInvalidDeltaChangesNothing(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.x", 1)
	v0 := s.Version()
	tests := []struct {
		name  string
		delta cas.Delta
		reads []contract.Path
		opts  cas.Options
	}{
		{name: "bad path", delta: cas.Delta{{Path: "domain..x", Op: contract.OpSet}}},
		{name: "bad read path", delta: cas.Delta{{Path: "domain.y", Op: contract.OpSet}}, reads: []contract.Path{""}},
		{name: "unknown op", delta: cas.Delta{{Path: "domain.y", Op: 42}}},
		{name: "written twice", delta: cas.Delta{{Path: "domain.y", Op: contract.OpSet}, {Path: "domain.y", Op: contract.OpDelete}}},
		{name: "delete with value", delta: cas.Delta{{Path: "domain.y", Op: contract.OpDelete, Value: []byte{1}}}},
		{name: "op id too long", delta: cas.Delta{{Path: "domain.y", Op: contract.OpSet}}, opts: cas.Options{OpID: strings.Repeat("x", 200)}},
		{name: "unknown mode", delta: cas.Delta{{Path: "domain.y", Op: contract.OpSet}}, opts: cas.Options{Mode: 9}},
		{name: "append too deep", delta: cas.Delta{{Path: P(strings.TrimSuffix(strings.Repeat("a.", contract.MaxPathDepth), ".")), Op: contract.OpAppend}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Commit(bg, v0, tt.reads, append(cas.Delta{{Path: "domain.z", Op: contract.OpSet}}, tt.delta...), tt.opts)
			if !errors.Is(err, cas.ErrInvalidDelta) {
				t.Fatalf("want ErrInvalidDelta, got %v", err)
			}
			if s.Version() != v0 {
				t.Fatal("version moved")
			}
			if _, ok := get(t, s, "domain.z"); ok {
				t.Fatal("partially applied")
			}
		})
	}
	if _, err := s.Commit(bg, v0+5, nil, cas.Delta{{Path: "domain.z", Op: contract.OpSet}}, cas.Options{}); !errors.Is(err, cas.ErrFutureSnap) {
		t.Fatalf("future snapshot: %v", err)
	}
}

// A multi-path delta is all or nothing: a conflict on its last path leaves
// its first paths untouched.
func TestAtomicMultiPath(t *testing.T) {
	s := cas.New(cas.Config{})
	snap := s.Snapshot()
	defer snap.Release()
	set(t, s, "domain.d", 7)
	var d cas.Delta
	for _, p := range []string{"domain.a", "domain.b", "domain.c", "domain.d"} {
		d.Set(P(p), enc(1))
	}
	if _, err := s.Commit(bg, snap.Version(), nil, d, cas.Options{}); !errors.Is(err, cas.ErrConflict) {
		t.Fatalf("want conflict, got %v", err)
	}
	for _, p := range []string{"domain.a", "domain.b", "domain.c"} {
		if _, ok := get(t, s, p); ok {
			t.Fatalf("%s partially applied", p)
		}
	}
}

func TestIdempotentOpID(t *testing.T) {
	s := cas.New(cas.Config{OpIDWindow: 2})
	var d cas.Delta
	d.Append(P("domain.log_x"), enc(1))
	r1, err := s.Commit(bg, s.Version(), nil, d, cas.Options{OpID: "op-1", Result: []byte("first")})
	if err != nil {
		t.Fatal(err)
	}
	set(t, s, "domain.y", 1)
	r2, err := s.Commit(bg, s.Version(), nil, d, cas.Options{OpID: "op-1", Result: []byte("second")})
	if err != nil || !r2.Duplicate || r2.Version != r1.Version || string(r2.Result) != "first" {
		t.Fatalf("repeat: %+v %v", r2, err)
	}
	snap := s.Snapshot()
	if n := len(snap.Subtree(P("domain.log_x"))); n != 1 {
		t.Fatalf("applied %d times", n)
	}
	snap.Release()
	// The window holds 2 ids: after two more, op-1 is forgotten.
	for _, id := range []string{"op-2", "op-3"} {
		if _, err := s.Commit(bg, s.Version(), nil, cas.Delta{{Path: "domain.z", Op: contract.OpSet}}, cas.Options{OpID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, ok := s.Lookup("op-1"); ok {
		t.Fatal("op-1 outlived the window")
	}
	if _, _, ok := s.Lookup("op-3"); !ok {
		t.Fatal("op-3 forgotten")
	}
}

// LOG paths only grow: appends add entries in order and never conflict
// with each other, even from the same stale snapshot.
func TestLogOnlyGrows(t *testing.T) {
	s := cas.New(cas.Config{})
	snap := s.Snapshot()
	defer snap.Release()
	prev := 0
	for i := range 5 {
		var d cas.Delta
		d.Append(P("domain.log_ev"), enc(int64(i)))
		d.Append(P("domain.log_ev"), enc(int64(100+i)))
		if _, err := s.Commit(bg, snap.Version(), nil, d, cas.Options{}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		now := s.Snapshot()
		es := now.Subtree(P("domain.log_ev"))
		now.Release()
		if len(es) != prev+2 {
			t.Fatalf("log has %d entries, want %d", len(es), prev+2)
		}
		if dec(t, es[len(es)-2].Value) != int64(i) || dec(t, es[len(es)-1].Value) != int64(100+i) {
			t.Fatal("entries out of order")
		}
		prev = len(es)
	}
	if es := snap.Subtree(P("domain.log_ev")); len(es) != 0 {
		t.Fatalf("the snapshot taken before the appends sees %d entries", len(es))
	}
}

func TestDroppedSeesEveryValueNoSnapshotSees(t *testing.T) {
	var got []string
	s := cas.New(cas.Config{
		Watch:   func(p contract.Path) bool { return p.InZone(contract.ZoneHeavy) },
		Dropped: func(p contract.Path, v []byte) { got = append(got, string(p)+"="+string(v)) },
	})
	ctx := context.Background()
	commit := func(d cas.Delta) {
		t.Helper()
		if _, err := s.Commit(ctx, s.Version(), nil, d, cas.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	var d cas.Delta
	d.Set("heavy.a", []byte("1"))
	d.Set("domain.x", []byte("1"))
	commit(d)
	held := s.Snapshot() // sees heavy.a=1
	d = nil
	d.Set("heavy.a", []byte("2"))
	d.Set("domain.x", []byte("2"))
	commit(d)
	if len(got) != 0 {
		t.Fatalf("dropped %v while a snapshot sees it", got)
	}
	held.Release()
	d = nil
	d.Delete("heavy.a")
	commit(d)
	s.Collect()
	slices.Sort(got)
	if want := []string{"heavy.a=1", "heavy.a=2"}; !slices.Equal(got, want) {
		t.Fatalf("dropped %v, want %v (domain.x is not watched)", got, want)
	}
}

// TestRestoreReplaysCommits: the changes a journal sees, folded into a
// State, restore a store that reads, versions, numbers LOG entries and
// remembers op ids like the original.
func TestRestoreReplaysCommits(t *testing.T) {
	var commits []cas.Commit
	orig := cas.New(cas.Config{Committed: func(c cas.Commit) { commits = append(commits, c) }})
	ctx := context.Background()
	commit := func(d cas.Delta, id string) {
		t.Helper()
		if _, err := orig.Commit(ctx, orig.Version(), nil, d, cas.Options{OpID: id, Result: []byte(`"r-` + id + `"`)}); err != nil {
			t.Fatal(err)
		}
	}
	var d cas.Delta
	d.Set("domain.a", []byte("1"))
	d.Set("domain.b", []byte("2"))
	commit(d, "op-1")
	d = nil
	d.Append("domain.log", []byte(`"x"`))
	d.Append("domain.log", []byte(`"y"`))
	d.Delete("domain.b")
	commit(d, "")
	d = nil
	d.Set("domain.a", []byte("3"))
	commit(d, "op-3")

	// Fold the journal into a State, as durable storage would.
	st := cas.State{Seqs: map[contract.Path]uint64{}}
	latest := map[contract.Path]cas.Entry{}
	for _, c := range commits {
		st.Version = c.Version
		for _, ch := range c.Changes {
			if ch.Deleted {
				delete(latest, ch.Path)
			} else {
				latest[ch.Path] = cas.Entry{Path: ch.Path, Value: ch.Value, Version: c.Version}
			}
			if ch.Root != "" {
				st.Seqs[ch.Root] = ch.Seq + 1
			}
		}
		if c.OpID != "" {
			st.OpIDs = append(st.OpIDs, cas.OpRecord{ID: c.OpID, Version: c.Version, Result: c.Result})
		}
	}
	for _, e := range latest {
		st.Entries = append(st.Entries, e)
	}
	got, err := cas.Restore(cas.Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version() != 3 || got.Len() != orig.Len() {
		t.Fatalf("version %d, %d paths; want 3, %d", got.Version(), got.Len(), orig.Len())
	}
	a, b := orig.Snapshot(), got.Snapshot()
	defer a.Release()
	defer b.Release()
	if x, y := a.Subtree("domain"), b.Subtree("domain"); fmt.Sprint(x) != fmt.Sprint(y) {
		t.Fatalf("restored %v, want %v", y, x)
	}
	if v, res, ok := got.Lookup("op-1"); !ok || v != 1 || string(res) != `"r-op-1"` {
		t.Fatalf("op-1: %d %s %v", v, res, ok)
	}
	// The next append numbers after the restored ones; a stale snapshot
	// version conflicts as it would have.
	d = nil
	d.Append("domain.log", []byte(`"z"`))
	if _, err := got.Commit(ctx, got.Version(), nil, d, cas.Options{}); err != nil {
		t.Fatal(err)
	}
	c := got.Snapshot()
	defer c.Release()
	if n := len(c.Subtree("domain.log")); n != 3 {
		t.Fatalf("log has %d entries after one more append, want 3", n)
	}
	var w cas.Delta
	w.Set("domain.a", []byte("9"))
	if _, err := got.Commit(ctx, 2, []contract.Path{"domain.a"}, w, cas.Options{}); !errors.Is(err, cas.ErrConflict) {
		t.Fatalf("a commit from before the restore: %v, want a conflict", err)
	}
	bad := st
	bad.Entries = append(slices.Clone(st.Entries), cas.Entry{Path: "domain.z", Value: []byte("1"), Version: 99})
	if _, err := cas.Restore(cas.Config{}, bad); err == nil {
		t.Fatal("an entry newer than the store was restored")
	}
}

// Export gives what a journal would have folded: paths with their
// versions, LOG numbering, the op id window oldest first (also once the
// window has wrapped), and Restore takes it back.
func TestExportRoundTrips(t *testing.T) {
	ctx := context.Background()
	orig := cas.New(cas.Config{OpIDWindow: 3})
	for i, id := range []string{"op-1", "op-2", "", "op-4", "op-5"} {
		var d cas.Delta
		d.Set(contract.Path(fmt.Sprintf("domain.p%d", i%3)), []byte(strconv.Itoa(i)))
		d.Append("domain.log", []byte(`"e"`))
		if i == 3 {
			d.Delete("domain.p1")
		}
		if _, err := orig.Commit(ctx, orig.Version(), nil, d, cas.Options{OpID: id, Result: []byte(`"r-` + id + `"`)}); err != nil {
			t.Fatal(err)
		}
	}
	st := orig.Export()
	var ids []string
	for _, o := range st.OpIDs {
		ids = append(ids, o.ID)
	}
	if st.Version != 5 || !slices.Equal(ids, []string{"op-2", "op-4", "op-5"}) || st.Seqs["domain.log"] != 5 {
		t.Fatalf("version %d, op ids %v, log seq %d", st.Version, ids, st.Seqs["domain.log"])
	}
	got, err := cas.Restore(cas.Config{OpIDWindow: 3}, st)
	if err != nil {
		t.Fatal(err)
	}
	a, b := orig.Snapshot(), got.Snapshot()
	defer a.Release()
	defer b.Release()
	if x, y := a.Subtree("domain"), b.Subtree("domain"); fmt.Sprint(x) != fmt.Sprint(y) || got.Version() != orig.Version() {
		t.Fatalf("restored %v at %d, want %v at %d", y, got.Version(), x, orig.Version())
	}
	if v, res, ok := got.Lookup("op-4"); !ok || v != 4 || string(res) != `"r-op-4"` {
		t.Fatalf("op-4: %d %s %v", v, res, ok)
	}
	if _, _, ok := got.Lookup("op-1"); ok {
		t.Fatal("op-1 left the window but came back")
	}
}
