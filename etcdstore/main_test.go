package etcdstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/etcdstore"
	"github.com/theus-run/theus/internal/etcdtest"
)

// shared is the 3-member etcd cluster every test of the package shares
// (cluster); each test keeps its keys under a prefix of its own.
var shared struct {
	once sync.Once
	dir  string
	c    *etcdtest.Cluster
	err  error
}

// cluster starts the shared cluster on first use. It starts inside m.Run,
// not before: Run swaps os.Stderr under -json (go test -json, gotestsum),
// and etcd's goroutines read it; a cluster started before Run raced that
// write.
func cluster(tb testing.TB) *etcdtest.Cluster {
	tb.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "etcdstore-test-")
		if shared.err == nil {
			shared.c, shared.err = etcdtest.Start(shared.dir, 3)
		}
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.c
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run runs the tests, then stops the shared cluster if one started it.
func run(m *testing.M) int {
	defer func() {
		if shared.c != nil {
			shared.c.Close()
		}
		if shared.dir != "" {
			os.RemoveAll(shared.dir)
		}
	}()
	return m.Run()
}

var bg = context.Background()

func P(s string) contract.Path { return contract.MustParse(s) }

func enc(n int64) []byte { return binary.AppendVarint(nil, n) }

func dec(t testing.TB, b []byte) int64 {
	t.Helper()
	if len(b) == 0 {
		return 0
	}
	n, k := binary.Varint(b)
	if k <= 0 {
		t.Fatalf("bad value %q", b)
	}
	return n
}

// client dials the given members of the cluster (all when none given).
func client(t testing.TB, members ...int) *clientv3.Client {
	t.Helper()
	eps := cluster(t).Endpoints()
	if len(members) > 0 {
		var some []string
		for _, m := range members {
			some = append(some, eps[m])
		}
		eps = some
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// store is a Store on its own client to the given members, under the
// test's prefix: two stores of one test share one Context.
func store(t testing.TB, members ...int) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(etcdstore.Config{Client: client(t, members...), Prefix: "t/" + t.Name() + "/"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustContract(t testing.TB, name string, in, out []string) contract.Contract {
	t.Helper()
	var ins, outs []contract.Path
	for _, p := range in {
		ins = append(ins, P(p))
	}
	for _, p := range out {
		outs = append(outs, P(p))
	}
	c, err := contract.New(name, ins, outs, contract.Pure)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// commit commits d from a view of reads, failing the test on error.
func commit(t testing.TB, s *etcdstore.Store, d cas.Delta, opts cas.Options, reads ...contract.Path) cas.Result {
	t.Helper()
	sn, err := s.View(bg, reads)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	r, err := s.Commit(bg, sn.Version(), reads, d, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// get reads the value at p in a new view.
func get(t testing.TB, s *etcdstore.Store, p contract.Path) ([]byte, bool) {
	t.Helper()
	sn, err := s.View(bg, []contract.Path{p})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	e, ok := sn.Get(p)
	return e.Value, ok
}

func isConflict(err error) bool { return errors.Is(err, cas.ErrConflict) }
