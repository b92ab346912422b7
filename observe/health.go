package observe

import (
	"fmt"
	"maps"
	"slices"

	"github.com/theus-run/theus/protocol"
)

// Health is the page's verdict: what a person should see at a glance.
// State is, from worst to best: down (no worker ready), thrashing
// (more conflicts than commits: callers fight over keys), saturated
// (dispatches wait for a worker), degraded (workers restarting, a
// worker not ready, or more than 5% of executes failing), idle, healthy.
// Why says what it is based on.
type Health struct {
	State string `json:"state"`
	Why   string `json:"why"`
	// HotKey is the path most often changed by commits that conflicted
	// first, from the commit log; "" when none did.
	HotKey string `json:"hot_key,omitempty"`
}

// window is how many samples the verdict looks at (10 s at the default
// interval).
const window = 10

// judge gives the verdict of the latest samples (oldest first) and
// counters; log is the newest commits.
func judge(st protocol.Stats, samples []sample, log []protocol.LogEntry) Health {
	ready := 0
	for _, w := range st.Workers {
		if w.State == "ready" {
			ready++
		}
	}
	if ready == 0 {
		return Health{State: "down", Why: fmt.Sprintf("no worker is ready (%d slots)", len(st.Workers))}
	}
	recent := samples[max(0, len(samples)-window):]
	var executes, commits, conflicts, failures float64
	queued := 0
	for _, s := range recent {
		executes += s.Executes
		commits += s.Commits
		conflicts += s.Conflicts
		failures += s.Failures
		if s.Queue > 0 {
			queued++
		}
	}
	n := float64(len(recent))
	restarts := uint64(0)
	if len(recent) > 0 {
		restarts = recent[len(recent)-1].Restarts - recent[0].Restarts
	}
	switch {
	case conflicts >= n && conflicts > commits:
		h := Health{State: "thrashing", Why: fmt.Sprintf("%.1f conflicts per commit over the last %d s", conflicts/max(commits, 1), len(recent))}
		if h.HotKey = hotKey(log); h.HotKey != "" {
			h.Why += "; hottest key " + h.HotKey
		}
		return h
	case queued*2 > len(recent):
		return Health{State: "saturated", Why: fmt.Sprintf("dispatches waited for a worker in %d of the last %d s (queue %d now)", queued, len(recent), st.DispatchQueue)}
	case restarts > 0:
		return Health{State: "degraded", Why: fmt.Sprintf("%d worker restarts in the last %d s", restarts, len(recent))}
	case ready < len(st.Workers):
		return Health{State: "degraded", Why: fmt.Sprintf("%d of %d workers ready", ready, len(st.Workers))}
	case executes > 0 && failures > 0.05*executes:
		return Health{State: "degraded", Why: fmt.Sprintf("%.0f%% of executes failed in the last %d s", 100*failures/executes, len(recent))}
	case executes == 0:
		return Health{State: "idle", Why: fmt.Sprintf("no execute in the last %d s", len(recent))}
	}
	return Health{State: "healthy", Why: fmt.Sprintf("%.0f executes/s, %.2f conflicts per commit, %d workers ready", executes/n, conflicts/max(commits, 1), ready)}
}

// hotKey is the path most often changed by the logged commits that met a
// conflict first.
func hotKey(log []protocol.LogEntry) string {
	count := map[string]int{}
	for _, e := range log {
		if e.Conflicts > 0 {
			for _, p := range e.Paths {
				count[p]++
			}
		}
	}
	best, n := "", 0
	for _, p := range slices.Sorted(maps.Keys(count)) {
		if count[p] > n {
			best, n = p, count[p]
		}
	}
	return best
}
