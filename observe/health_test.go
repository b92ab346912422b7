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
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := judge(protocol.Stats{Workers: tt.workers}, tt.samples, tt.log)
			if h.State != tt.want || !strings.Contains(h.Why, tt.why) {
				t.Errorf("judge = %+v, want %s (%q)", h, tt.want, tt.why)
			}
		})
	}
}
