package cas_test

import (
	"context"
	"encoding/binary"
	"testing"

	"go.uber.org/goleak"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// TestMain checks that no test leaves a goroutine behind. (Under js/wasm
// the runtime keeps one of its own to wait for JavaScript's events.)
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("runtime.handleEvent"))
}

var bg = context.Background()

func P(s string) contract.Path { return contract.MustParse(s) }

func Ps(ss ...string) []contract.Path {
	out := make([]contract.Path, len(ss))
	for i, s := range ss {
		out[i] = P(s)
	}
	return out
}

func enc(n int64) []byte { return binary.AppendVarint(nil, n) }

func dec(t testing.TB, b []byte) int64 {
	t.Helper()
	n, k := binary.Varint(b)
	if k <= 0 {
		t.Fatalf("bad value %x", b)
	}
	return n
}

// get reads p at the newest version.
func get(t testing.TB, s *cas.Store, p string) (int64, bool) {
	t.Helper()
	sn := s.Snapshot()
	defer sn.Release()
	e, ok := sn.Get(P(p))
	if !ok {
		return 0, false
	}
	return dec(t, e.Value), true
}

// set commits v at p from the newest snapshot, failing the test on error.
func set(t testing.TB, s *cas.Store, p string, v int64) cas.Version {
	t.Helper()
	var d cas.Delta
	d.Set(P(p), enc(v))
	r, err := s.Commit(bg, s.Version(), nil, d, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Version
}

func mustContract(t testing.TB, name string, in, out []string, sem contract.Semantic) contract.Contract {
	t.Helper()
	c, err := contract.New(name, Ps(in...), Ps(out...), sem)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// incr is a process that adds one to the int at p.
func incr(t testing.TB, p string) cas.Func {
	return func(_ context.Context, in cas.View) (cas.Outcome, error) {
		var n int64
		if b, ok, err := in.Get(P(p)); err != nil {
			return cas.Outcome{}, err
		} else if ok {
			n = dec(t, b)
		}
		var d cas.Delta
		d.Set(P(p), enc(n+1))
		return cas.Outcome{Delta: d}, nil
	}
}
