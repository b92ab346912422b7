package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/protocol"
)

// Stats counts every execute by process and outcome, with its latency,
// the per-commit attempts, the journal's batches and each worker, and
// agrees with Status: both read the same counters.
func TestStatsCountExecutesByProcessAndOutcome(t *testing.T) {
	h := start(t, 2, func(c *Config) { c.StateDir, c.Durability, c.HeavySize = t.TempDir(), durable.Sync, 8<<20 })
	c := h.dial(t)
	ctx := context.Background()
	for range 3 {
		if _, err := c.Exec(ctx, "noop", nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := c.Exec(ctx, "counter.add", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "counter.add", map[string]any{"by": "x"}); !errors.Is(err, protocol.ErrBadArgs) {
		t.Fatalf("bad args: %v", err)
	}
	if _, err := c.Exec(ctx, "no.such", nil); !errors.Is(err, protocol.ErrUnknownProcess) {
		t.Fatalf("unknown process: %v", err)
	}
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]protocol.ProcessStats{}
	for _, p := range st.Processes {
		byName[p.Name] = p
	}
	if got := byName["noop"]; got.Outcomes["ok"] != 3 || got.Total() != 3 || got.Latency.Count != 3 || !(got.Latency.Sum > 0) {
		t.Errorf("noop: %+v, want 3 ok with 3 latencies", got)
	}
	if got := byName["counter.add"]; got.Outcomes["ok"] != 2 || got.Outcomes[protocol.CodeBadArgs] != 1 || got.Latency.Count != 3 {
		t.Errorf("counter.add: %+v, want 2 ok, 1 bad_args", got)
	}
	if got := byName["_unknown"]; got.Outcomes[protocol.CodeUnknownProcess] != 1 {
		t.Errorf("unknown processes: %+v", got)
	}
	if st.Commits != 2 || st.AttemptsPerCommit.Count != 2 || st.AttemptsPerCommit.Counts[0] != 2 {
		t.Errorf("commits %d, attempts per commit %+v: want 2 commits of one attempt", st.Commits, st.AttemptsPerCommit)
	}
	if st.Journal.Mode != "sync" || st.Journal.Durable != st.Version || st.Journal.BatchSize.Count != st.Journal.Batches || st.Journal.Fsync.Count != st.Journal.Batches || st.Journal.Bytes == 0 || st.Journal.LastFlush.IsZero() {
		t.Errorf("journal: %+v, version %d", st.Journal, st.Version)
	}
	if len(st.Workers) != 2 {
		t.Fatalf("workers: %+v", st.Workers)
	}
	for _, w := range st.Workers {
		if w.State != "ready" || w.PID == 0 || w.RSS <= 0 {
			t.Errorf("worker %+v: want ready, with a pid and a resident size", w)
		}
	}
	if hv := st.Heavy; hv.Slabs != 2 || len(hv.PerSlab) != 2 || hv.PerSlab[0].ID >= hv.PerSlab[1].ID {
		t.Errorf("heavy: %+v, want 2 slabs, by id", hv)
	}
	if st.Clients != 1 {
		t.Errorf("clients %d, want 1", st.Clients)
	}
	status, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.Commits != st.Commits || status.Version != st.Version || status.Failures != st.Failures {
		t.Errorf("status %+v disagrees with stats %+v", status, st)
	}
}

// The commit log keeps the newest CommitLog commits in version order,
// each with its process, op id, paths and attempts.
func TestCommitLog(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.CommitLog = 4 })
	c := h.dial(t)
	ctx := context.Background()
	if _, err := c.Do(ctx, clientRequest("counters.add", map[string]any{"key": "a"}, "op-1")); err != nil {
		t.Fatal(err)
	}
	entries, total, err := c.Log(ctx, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if total != 1 || len(entries) != 1 {
		t.Fatalf("log after one commit: %+v, total %d", entries, total)
	}
	e := entries[0]
	if e.Version != 1 || e.Process != "counters.add" || e.OpID != "op-1" || !slices.Equal(e.Paths, []string{"domain.counters.a"}) ||
		e.Attempts != 1 || e.DurationNS <= 0 || time.Since(e.Time) > time.Minute {
		t.Errorf("entry %+v", e)
	}
	for i := range 9 {
		proc := "counter.add"
		if i%3 == 2 {
			proc = "noop" // read only: not a commit
		}
		if _, err := c.Exec(ctx, proc, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Signal(ctx, "domain.sig_x", 1); err != nil {
		t.Fatal(err)
	}
	entries, total, err = c.Log(ctx, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	var versions []uint64
	for _, e := range entries {
		versions = append(versions, e.Version)
	}
	if total != 8 || !slices.Equal(versions, []uint64{5, 6, 7, 8}) || entries[3].Process != protocol.MethodSignalPublish || entries[3].Signals != 1 {
		t.Errorf("log of 4 after 8 commits: total %d, %+v", total, entries)
	}
	if only, _, err := c.Log(ctx, 2, "counter.add"); err != nil || len(only) != 2 || only[0].Version != 6 || only[1].Version != 7 {
		t.Errorf("the newest 2 of counter.add: %+v, %v", only, err)
	}
	if _, _, err := c.Log(ctx, -1, ""); !errors.Is(err, protocol.ErrBadRequest) {
		t.Errorf("n = -1: %v, want bad_request", err)
	}
}

// log.follow sends the newest n commits of the process, then every new
// one, until closed.
func TestCommitLogFollow(t *testing.T) {
	h := start(t, 1, nil)
	c := h.dial(t)
	ctx := context.Background()
	exec := func(proc string) {
		t.Helper()
		var args any
		if proc == "counters.add" {
			args = map[string]any{"key": "k"}
		}
		if _, err := c.Exec(ctx, proc, args); err != nil {
			t.Fatal(err)
		}
	}
	for _, proc := range []string{"counter.add", "counters.add", "counter.add", "counter.add"} {
		exec(proc)
	}
	f, err := c.FollowLog(ctx, 2, "counter.add")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, proc := range []string{"counter.add", "noop", "counters.add", "counter.add"} {
		exec(proc)
	}
	var followed []uint64
	for len(followed) < 4 {
		e, err := f.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e.Process != "counter.add" {
			t.Fatalf("following counter.add: got %+v", e)
		}
		followed = append(followed, e.Version)
	}
	if !slices.Equal(followed, []uint64{3, 4, 5, 7}) {
		t.Errorf("followed %v", followed)
	}
	f.Close()
	if _, err := f.Next(ctx); err != io.EOF {
		t.Errorf("after Close: %v, want EOF", err)
	}
}

// A follower that falls more than the log's size behind is told how many
// commits it missed, once, where they went missing.
func TestCommitLogFollowerLags(t *testing.T) {
	l := newCommitLog(4)
	next := l.start(10, "")
	for range 10 {
		l.add(commitAt(l))
	}
	entries, lagged, after := l.since(next, "", 0)
	if lagged != 6 || len(entries) != 4 || entries[0].Version != 7 || after != 10 {
		t.Fatalf("since 0 after 10 commits in a ring of 4: %d lagged, %+v, next %d", lagged, entries, after)
	}
	if entries, lagged, _ := l.since(after, "", 0); lagged != 0 || len(entries) != 0 {
		t.Fatalf("nothing new: %d, %+v", lagged, entries)
	}
}

// The dispatch queue counts the executes waiting for a worker with
// room.
func TestStatsDispatchQueue(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.Pool.MaxInFlight = 1 })
	c := h.dial(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := c.Exec(ctx, "fault.sleep", map[string]int{"ms": 300}); err != nil {
				t.Error(err)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for h.s.Stats().DispatchQueue != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("dispatch queue %d, want 2", h.s.Stats().DispatchQueue)
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	if q := h.s.Stats().DispatchQueue; q != 0 {
		t.Errorf("dispatch queue %d after the executes, want 0", q)
	}
}

func clientRequest(process string, args any, opID string) client.Request {
	return client.Request{Process: process, Args: args, OpID: opID}
}

// commitAt is the next commit of l, of one path.
func commitAt(l *commitLog) cas.Commit {
	return cas.Commit{Version: cas.Version(l.count() + 1), Changes: []cas.Change{{Path: contract.Path("domain.x"), Value: json.RawMessage("1")}}}
}
