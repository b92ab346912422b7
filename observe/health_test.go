package observe

import (
	"strings"
	"testing"

	"github.com/theus-run/theus/protocol"
)

// The verdict names the worst thing the last samples show.
func TestJudge(t *testing.T) {
	ready := []protocol.WorkerStats{{State: "ready"}, {State: "ready"}}
	steady := func(s sample) []sample {
		out := make([]sample, window)
		for i := range out {
			out[i] = s
		}
		return out
	}
	for _, tt := range []struct {
		name    string
		workers []protocol.WorkerStats
		samples []sample
		log     []protocol.LogEntry
		want    string
		why     string
	}{
		{"down", []protocol.WorkerStats{{State: "backoff"}}, steady(sample{Executes: 100}), nil, "down", "no worker is ready"},
		{"thrashing", ready, steady(sample{Executes: 50, Commits: 10, Conflicts: 40}),
			[]protocol.LogEntry{{Conflicts: 3, Paths: []string{"domain.hot"}}, {Conflicts: 0, Paths: []string{"domain.cold"}}, {Conflicts: 1, Paths: []string{"domain.hot", "domain.b"}}},
			"thrashing", "hottest key domain.hot"},
		{"saturated", ready, steady(sample{Executes: 900, Commits: 900, Queue: 40}), nil, "saturated", "waited for a worker"},
		{"restarting", ready, []sample{{Executes: 5, Restarts: 1}, {Executes: 5, Restarts: 3}}, nil, "degraded", "2 worker restarts"},
		{"a worker down", []protocol.WorkerStats{{State: "ready"}, {State: "backoff"}}, steady(sample{Executes: 5}), nil, "degraded", "1 of 2 workers ready"},
		{"failing", ready, steady(sample{Executes: 100, Commits: 80, Failures: 20}), nil, "degraded", "20% of executes failed"},
		{"idle", ready, steady(sample{}), nil, "idle", "no execute"},
		{"healthy", ready, steady(sample{Executes: 100, Commits: 100, Conflicts: 2}), nil, "healthy", "100 executes/s"},
		// The edges: one conflict a second is thrashing when commits are
		// fewer; a queue in half the samples is not saturation; 5% of
		// executes failing is not degraded yet.
		{"one conflict a second", ready, steady(sample{Executes: 1, Commits: 0.5, Conflicts: 1}), nil, "thrashing", "2.0 conflicts per commit"},
		{"as many conflicts as commits", ready, steady(sample{Executes: 5, Commits: 5, Conflicts: 5}), nil, "healthy", "1.00 conflicts per commit"},
		{"queued half the time", ready, append(steady(sample{Executes: 10, Commits: 10})[:5], steady(sample{Executes: 10, Commits: 10, Queue: 1})[:5]...), nil, "healthy", ""},
		{"queued 6 of 10", ready, append(steady(sample{Executes: 10, Commits: 10})[:4], steady(sample{Executes: 10, Commits: 10, Queue: 1})[:6]...), nil, "saturated", "in 6 of the last 10 s (queue 0 now)"},
		{"5% failing", ready, steady(sample{Executes: 100, Commits: 95, Failures: 5}), nil, "healthy", ""},
		{"no sample yet", ready, nil, nil, "idle", "no execute in the last 0 s"},
		{"old samples", ready, append(steady(sample{Executes: 100, Conflicts: 500}), steady(sample{Executes: 7, Commits: 7})...), nil, "healthy", "7 executes/s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := judge(protocol.Stats{Workers: tt.workers}, tt.samples, tt.log)
			if h.State != tt.want || !strings.Contains(h.Why, tt.why) {
				t.Errorf("judge = %+v, want %s (%q)", h, tt.want, tt.why)
			}
		})
	}
}

// The hottest key is the path most often written by commits that
// conflicted first; a tie goes to the first in order.
func TestHotKey(t *testing.T) {
	log := []protocol.LogEntry{
		{Conflicts: 1, Paths: []string{"domain.b", "domain.a"}},
		{Conflicts: 0, Paths: []string{"domain.c", "domain.c"}},
		{Conflicts: 2, Paths: []string{"domain.b"}},
		{Conflicts: 1, Paths: []string{"domain.a"}},
	}
	if got := hotKey(log); got != "domain.a" {
		t.Errorf("hotKey = %q, want domain.a (tied with domain.b, first in order)", got)
	}
	if got := hotKey(log[:3]); got != "domain.b" {
		t.Errorf("hotKey = %q, want domain.b", got)
	}
	if got := hotKey(log[1:2]); got != "" {
		t.Errorf("no conflict: hotKey = %q", got)
	}
}
