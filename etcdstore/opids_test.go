package etcdstore_test

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/etcdstore"
)

// opStore is a Store of the test's prefix whose op ids are kept for
// retention.
func opStore(t *testing.T, c *clientv3.Client, retention time.Duration) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(etcdstore.Config{Client: c, Prefix: "t/" + t.Name() + "/", OpIDRetention: retention})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func commitOp(t *testing.T, s *etcdstore.Store, op string) cas.Result {
	t.Helper()
	var d cas.Delta
	d.Append(P("domain.log_ops"), []byte(op))
	r, err := s.Commit(bg, 0, nil, d, cas.Options{Mode: cas.Training, OpID: op, OpDigest: cas.OpDigest{1}})
	if err != nil {
		t.Fatalf("commit of op %s: %v", op, err)
	}
	return r
}

// opLease returns the lease op's key is on, and whether the key exists.
func opLease(t *testing.T, c *clientv3.Client, op string) (clientv3.LeaseID, bool) {
	t.Helper()
	r, err := c.Get(bg, "t/"+t.Name()+"/o/"+op)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) == 0 {
		return 0, false
	}
	return clientv3.LeaseID(r.Kvs[0].Lease), true
}

// TestOpIDRetention: an op id repeated within its retention returns its
// first outcome; once the retention is over etcd has deleted it, and the
// same op id runs again. Op ids of one slice of time share one lease.
func TestOpIDRetention(t *testing.T) {
	c := client(t)
	s := opStore(t, c, 2*time.Second)
	first := commitOp(t, s, "a")
	if again := commitOp(t, s, "a"); !again.Duplicate || again.Version != first.Version {
		t.Fatalf("a repeat within the retention: %+v, want the first outcome %+v", again, first)
	}
	commitOp(t, s, "b")
	la, okA := opLease(t, c, "a")
	lb, okB := opLease(t, c, "b")
	if !okA || !okB || la == 0 || la != lb {
		t.Fatalf("op ids of one slice on leases %x and %x (kept: %v %v), want one lease", la, lb, okA, okB)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := opLease(t, c, "a"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("op id a still kept 30 s after a retention of 2 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := commitOp(t, s, "a"); r.Duplicate || r.Version <= first.Version {
		t.Fatalf("op id a after its retention: %+v, want a new commit", r)
	}
}

// TestOpIDLeaseLost: a commit whose op id lease etcd no longer knows
// (revoked behind the Store's back) is refused by etcd with nothing
// applied; the Store takes a new lease and commits, once.
func TestOpIDLeaseLost(t *testing.T) {
	c := client(t)
	s := opStore(t, c, time.Hour)
	commitOp(t, s, "a")
	l, ok := opLease(t, c, "a")
	if !ok || l == 0 {
		t.Fatalf("op id a on lease %x (kept: %v)", l, ok)
	}
	if _, err := c.Revoke(bg, l); err != nil {
		t.Fatal(err)
	}
	r := commitOp(t, s, "b")
	if r.Duplicate {
		t.Fatalf("op b: %+v", r)
	}
	lb, ok := opLease(t, c, "b")
	if !ok || lb == 0 || lb == l {
		t.Fatalf("op id b on lease %x (kept: %v), want a new lease, not %x", lb, ok, l)
	}
	if _, _, _, err := s.LookupOp(bg, "b", cas.OpDigest{1}); err != nil {
		t.Fatal(err)
	}
}

// TestOpIDKeptForEver: a negative retention puts op ids on no lease.
func TestOpIDKeptForEver(t *testing.T) {
	c := client(t)
	s := opStore(t, c, -1)
	commitOp(t, s, "a")
	if l, ok := opLease(t, c, "a"); !ok || l != 0 {
		t.Fatalf("op id a on lease %x (kept: %v), want no lease", l, ok)
	}
}
