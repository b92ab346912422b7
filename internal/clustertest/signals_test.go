package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/etcdtest"
)

// watchAll collects what a watcher receives until n signals came or the
// context ends; a lagged item fails t (no watcher here falls behind).
func watchAll(t *testing.T, ctx context.Context, w *client.Watcher, n int) []client.Signal {
	t.Helper()
	var got []client.Signal
	for len(got) < n {
		s, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("watch: %v after %d of %d signals", err, len(got), n)
		}
		if s.Lagged > 0 {
			t.Fatalf("watch: lagged %d", s.Lagged)
		}
		got = append(got, s)
	}
	return got
}

// checkSignals checks that got holds exactly the signals of want
// (version -> value), in version order, once each.
func checkSignals(t *testing.T, who string, got []client.Signal, want map[uint64]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d signals, want %d", who, len(got), len(want))
	}
	for i, s := range got {
		if i > 0 && s.Version <= got[i-1].Version {
			t.Fatalf("%s: signal of version %d after %d", who, s.Version, got[i-1].Version)
		}
		if w, ok := want[s.Version]; !ok || w != s.Path+"="+string(s.Value) {
			t.Fatalf("%s: signal %s=%s at version %d, want %q", who, s.Path, s.Value, s.Version, w)
		}
	}
}

// Signals published through two supervisors, and one a process wrote,
// reach the watchers of both supervisors, in version order, each once.
// A supervisor started later does not replay them as new: its watcher
// gets only the signals committed after it.
func etcdSignals(t *testing.T, cl *etcdtest.Cluster) {
	a, b := startEtcd(t, cl, nil), startEtcd(t, cl, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wa, err := a.dial(t).Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wb, err := b.dial(t).Watch(ctx, "domain")
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, h := range []*harness{a, b} {
		c := h.dial(t)
		wg.Go(func() {
			for j := range 10 {
				v := fmt.Sprintf(`"%d-%d"`, i, j)
				ver, err := c.Signal(ctx, demo.PingSignal, json.RawMessage(v))
				if err != nil {
					t.Errorf("signal through supervisor %d: %v", i, err)
					return
				}
				mu.Lock()
				want[ver] = demo.PingSignal + "=" + v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r, err := b.dial(t).Exec(ctx, "ping.mark", demo.MarkArgs{Key: "k", Value: json.RawMessage("1")})
	if err != nil {
		t.Fatalf("a process writing a signal: %v", err)
	}
	want[r.Version] = demo.PingSignal + `={"key":"k","value":1}`
	checkSignals(t, "watcher of supervisor A", watchAll(t, ctx, wa, len(want)), want)
	checkSignals(t, "watcher of supervisor B", watchAll(t, ctx, wb, len(want)), want)

	late := startEtcd(t, cl, nil)
	wl, err := late.dial(t).Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	ver, err := a.dial(t).Signal(ctx, demo.PingSignal, "new")
	if err != nil {
		t.Fatal(err)
	}
	next := map[uint64]string{ver: demo.PingSignal + `="new"`}
	checkSignals(t, "watcher of a supervisor started later", watchAll(t, ctx, wl, 1), next)
	checkSignals(t, "watcher of supervisor B, after", watchAll(t, ctx, wb, 1), next)
}
