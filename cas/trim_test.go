package cas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/theus-run/theus/contract"
)

// TestPopFront: popFront keeps the elements after i in order, clears the
// dropped ones (so they hold no memory), and moves the rest to the front
// of the array exactly when they are no more than those dropped.
func TestPopFront(t *testing.T) {
	for n := range 9 {
		for i := range n + 1 {
			q := make([]*int, n, n+3)
			for k := range q {
				v := k
				q[k] = &v
			}
			want := slices.Clone(q[i:])
			got := popFront(q, i)
			if !slices.Equal(got, want) {
				t.Fatalf("popFront(%d of %d) = %v, want %v", i, n, got, want)
			}
			moved := i > 0 && n-i <= i
			if moved != (cap(got) == cap(q)) && i > 0 {
				t.Fatalf("popFront(%d of %d): cap %d of %d; want the rest moved to the front: %v", i, n, cap(got), cap(q), moved)
			}
			live := 0
			for _, p := range q[:n] {
				if p != nil {
					live++
				}
			}
			if live != n-i {
				t.Fatalf("popFront(%d of %d): %d elements left in the array, want %d", i, n, live, n-i)
			}
		}
	}
}

// TestDeleteLeavesAtOnce: with no snapshot held, a deleted path and its
// emptied ancestors leave the trie in the commit that deletes it.
func TestDeleteLeavesAtOnce(t *testing.T) {
	s := New(Config{})
	p := contract.MustParse("domain.a.b")
	for _, op := range []contract.Op{contract.OpSet, contract.OpDelete} {
		var v []byte
		if op == contract.OpSet {
			v = []byte{1}
		}
		if _, err := s.Commit(context.Background(), s.Version(), nil, Delta{{Path: p, Op: op, Value: v}}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if s.index.len() != 0 || len(s.root.children) != 0 {
		t.Fatalf("trie after the delete: %d paths indexed", s.index.len())
	}
}

// TestHotKeys: a conflict heats the paths it names, or every key when it
// names none (strict mode, an old snapshot) or is no *ConflictError.
func TestHotKeys(t *testing.T) {
	keys := []string{"domain.a", "domain.b"}
	for _, c := range []struct {
		err  error
		want []string
	}{
		{&ConflictError{Paths: []contract.Path{"domain.b"}}, []string{"domain.b"}},
		{fmt.Errorf("wrapped: %w", &ConflictError{Paths: []contract.Path{"domain.a"}}), []string{"domain.a"}},
		{&ConflictError{Reason: "strict"}, keys},
		{errors.New("other"), keys},
	} {
		if got := hotKeys(c.err, keys); !slices.Equal(got, c.want) {
			t.Errorf("hotKeys(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestUnlinkedNodeQueuedAgain: a node can leave the trie through its
// child's trim (its ancestors go with the child) while an entry of its own
// is still queued, at a later version. When that entry comes up, after the
// path was written again, it must not unlink the new node: the path's new
// value stays readable.
func TestUnlinkedNodeQueuedAgain(t *testing.T) {
	s := New(Config{})
	ctx := context.Background()
	a, b := contract.MustParse("domain.a"), contract.MustParse("domain.a.b")
	commit := func(p contract.Path, op contract.Op) {
		t.Helper()
		var v []byte
		if op == contract.OpSet {
			v = []byte("v" + fmt.Sprint(s.Version()+1))
		}
		if _, err := s.Commit(ctx, s.Version(), nil, Delta{{Path: p, Op: op, Value: v}}, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	commit(a, contract.OpSet) // 1
	commit(b, contract.OpSet) // 2
	s2 := s.Snapshot()
	commit(a, contract.OpSet) // 3: a queued at 3
	s3 := s.Snapshot()
	commit(a, contract.OpDelete) // 4
	commit(b, contract.OpDelete) // 5: b queued at 5
	s5 := s.Snapshot()
	s2.Release()
	commit("domain.z", contract.OpSet) // 6: the horizon is 3; a, written since, is queued again at 6
	s3.Release()
	commit("domain.y", contract.OpSet) // 7: the horizon is 5; b leaves, and a with it, a's entry at 6 stays
	commit(a, contract.OpSet)          // 8: a new node for a
	s5.Release()
	commit("domain.x", contract.OpSet) // 9: a's entry at 6 comes up
	sn := s.Snapshot()
	defer sn.Release()
	e, ok := sn.Get(a)
	if !ok || string(e.Value) != "v8" {
		t.Fatalf("Get(%s) = %q, %v; want v8 (written at 8)", a, e.Value, ok)
	}
	if got := sn.Subtree("domain"); len(got) != 4 {
		t.Fatalf("Subtree(domain) = %v, want a, x, y and z", got)
	}
}
