package cas_test

import (
	"context"
	"errors"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// TestViewSubtree: a process reads a subtree of its inputs as copies,
// sorted by path, and a subtree outside them is a violation.
func TestViewSubtree(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.in.b", 2)
	set(t, s, "domain.in.a", 1)
	set(t, s, "domain.secret", 3)
	r := &cas.Runner{Store: s}
	c := mustContract(t, "p", []string{"domain.in"}, []string{"domain.in"}, contract.Pure)
	_, err := r.Call(bg, c, "", func(_ context.Context, in cas.View) (cas.Outcome, error) {
		es, err := in.Subtree(P("domain.in"))
		if err != nil {
			return cas.Outcome{}, err
		}
		if len(es) != 2 || es[0].Path != "domain.in.a" || es[1].Path != "domain.in.b" {
			t.Fatalf("Subtree: %v", es)
		}
		es[0].Value[0] = 0x7f // the process's copy
		if _, err := in.Subtree(P("domain")); !errors.Is(err, contract.ErrUndeclaredRead) {
			t.Errorf("Subtree of domain: %v, want ErrUndeclaredRead", err)
		}
		return cas.Outcome{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := get(t, s, "domain.in.a"); v != 1 {
		t.Fatalf("a process changed the store's value: %d", v)
	}
}

// TestViewKeptPastItsCall: Call reuses its snapshots, so a View kept past
// its call must not read through the snapshot that a later call took: each
// of its methods panics, before and after that later call, and the later
// call reads its own version.
func TestViewKeptPastItsCall(t *testing.T) {
	s := cas.New(cas.Config{})
	set(t, s, "domain.in.a", 1)
	r := &cas.Runner{Store: s}
	c := mustContract(t, "p", []string{"domain.in"}, []string{"domain.in"}, contract.Pure)
	var kept cas.View
	if _, err := r.Call(bg, c, "", func(_ context.Context, in cas.View) (cas.Outcome, error) {
		kept = in
		return cas.Outcome{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	uses := map[string]func(){
		"Get":     func() { kept.Get(P("domain.in.a")) },
		"Subtree": func() { kept.Subtree(P("domain.in")) },
		"Version": func() { kept.Version() },
	}
	mustPanic := func(when string) {
		t.Helper()
		for name, use := range uses {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s of a View kept past its call, %s: no panic", name, when)
					}
				}()
				use()
			}()
		}
	}
	mustPanic("after its call")
	set(t, s, "domain.in.a", 2)
	for range 4 { // later calls, on the snapshots Call reuses
		if _, err := r.Call(bg, c, "", func(_ context.Context, in cas.View) (cas.Outcome, error) {
			mustPanic("during a later call")
			if v, _, err := in.Get(P("domain.in.a")); err != nil || len(v) == 0 {
				t.Errorf("a later call's Get: %v %v", v, err)
			}
			if in.Version() != s.Version() {
				t.Errorf("a later call reads version %d, the store is at %d", in.Version(), s.Version())
			}
			return cas.Outcome{}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}
