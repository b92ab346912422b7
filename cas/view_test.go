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
