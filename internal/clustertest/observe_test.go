package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/etcdtest"
	"github.com/theus-run/theus/protocol"
)

// Executes through supervisors on etcd are observed as on one machine:
// each supervisor's commit log (the log method, theusctl log) holds the
// commits made through it, with their process, op id and version, and
// its stats count them and read etcd's version.
func etcdObserved(t *testing.T, cl *etcdtest.Cluster) {
	a, b := startEtcd(t, cl, nil), startEtcd(t, cl, nil)
	ca, cb := a.dial(t), b.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var versions []uint64
	for i, op := range []string{"obs-1", "obs-2", "obs-3"} {
		r, err := ca.Do(ctx, client.Request{Process: "counter.add", OpID: op})
		if err != nil {
			t.Fatalf("counter.add %d through A: %v", i, err)
		}
		versions = append(versions, r.Version)
	}
	rb, err := cb.Exec(ctx, "counter.add", nil)
	if err != nil {
		t.Fatal(err)
	}
	la, err := a.s.Log(protocol.LogRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if la.Total != 3 || len(la.Entries) != 3 {
		t.Fatalf("A's log holds %d of %d commits, want the 3 made through it: %+v", len(la.Entries), la.Total, la.Entries)
	}
	for i, e := range la.Entries {
		if e.Version != versions[i] || e.Process != "counter.add" || e.OpID != "obs-"+string(rune('1'+i)) || len(e.Paths) != 1 || e.Paths[0] != demo.CounterPath {
			t.Fatalf("A's log entry %d: %+v, want counter.add of version %d, op id obs-%d, at %s", i, e, versions[i], i+1, demo.CounterPath)
		}
	}
	lb, err := b.s.Log(protocol.LogRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(lb.Entries) != 1 || lb.Entries[0].Version != rb.Version {
		t.Fatalf("B's log: %+v, want its one commit of version %d", lb.Entries, rb.Version)
	}
	st := a.s.Stats()
	if st.Commits != 3 || st.AttemptsPerCommit.Count != 3 || st.CommitLog != 3 || st.Version < rb.Version {
		t.Fatalf("A's stats: %d commits, %d attempts observed, %d in the log, version %d; want 3, 3, 3, at least %d",
			st.Commits, st.AttemptsPerCommit.Count, st.CommitLog, st.Version, rb.Version)
	}
}
