package observe

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
)

// tick turns two Stats a known time apart into rates: per second,
// per process from the difference of its counters and histograms, and
// keeps History/every samples.
func TestTickRates(t *testing.T) {
	h := newPageHub(&fakeSource{}, History/3) // keeps 3 samples
	t0 := time.Unix(1000, 0)
	lat := func(counts ...uint64) protocol.Histogram {
		var n uint64
		for _, c := range counts {
			n += c
		}
		return protocol.Histogram{Bounds: []float64{0.001, 0.002, 0.004}, Counts: counts, Count: n, Sum: float64(n) * 0.001}
	}
	prev := protocol.Stats{Time: t0, Commits: 10, Conflicts: 0, Failures: 1,
		Processes: []protocol.ProcessStats{{Name: "a", Outcomes: map[string]uint64{"ok": 10}, Latency: lat(10, 0, 0, 0)}},
		Workers:   []protocol.WorkerStats{{Restarts: 1}, {Restarts: 2}}}
	cur := protocol.Stats{Time: t0.Add(2 * time.Second), Commits: 30, Conflicts: 4, Failures: 3, DispatchQueue: 5,
		Processes: []protocol.ProcessStats{
			{Name: "a", Outcomes: map[string]uint64{"ok": 28, "duplicate": 2, "timeout": 2}, Latency: lat(10, 0, 20, 2)},
			{Name: "b", Outcomes: map[string]uint64{"ok": 4}, Latency: lat(4, 0, 0, 0)},
		},
		Workers: []protocol.WorkerStats{{Restarts: 1}, {Restarts: 4}}}
	h.tick(prev, cur)
	if len(h.samples) != 1 {
		t.Fatalf("%d samples", len(h.samples))
	}
	s := h.samples[0]
	want := sample{T: cur.Time.UnixMilli(), Executes: 11 + 2, Commits: 10, Conflicts: 2, Failures: 1, Queue: 5, Restarts: 5}
	got := s
	got.P99 = 0
	if got != want {
		t.Errorf("sample %+v, want %+v", got, want)
	}
	if s.P99 <= 0.002 || s.P99 > 0.004 { // 22 of the interval's 26 are in (2, 4] ms, and p99 above every bound is the last bound
		t.Errorf("p99 %v, want in (0.002, 0.004]", s.P99)
	}
	r := h.last.Rates
	if len(r) != 2 || r[0].Name != "a" || r[0].Executes != 11 || r[0].Errors != 1 || r[1].Executes != 2 || r[1].Errors != 0 {
		t.Errorf("rates %+v", r)
	}
	if r[0].P50 <= 0.002 || r[0].P50 > 0.004 || r[1].P50 <= 0 || r[1].P50 > 0.001 {
		t.Errorf("p50s %v, %v: want a's in (2, 4] ms, b's in (0, 1] ms", r[0].P50, r[1].P50)
	}
	if len(h.last.Log) != 1 || h.last.Health.State == "" {
		t.Errorf("event: log %+v, health %+v", h.last.Log, h.last.Health)
	}
	h.tick(cur, cur) // no time passed: nothing to say
	if len(h.samples) != 1 {
		t.Errorf("an interval of 0 s made a sample")
	}
	for i := range 5 {
		next := cur
		next.Time = cur.Time.Add(time.Duration(i+1) * time.Second)
		h.tick(cur, next)
	}
	if len(h.samples) != 3 || h.samples[2].T != cur.Time.Add(5*time.Second).UnixMilli() {
		t.Errorf("%d samples kept, the last at %d; want the newest 3", len(h.samples), h.samples[len(h.samples)-1].T)
	}
}

// A new stream's first event holds the whole history; NaN latencies
// travel as -1.
func TestSubscribeFirstEventHasHistory(t *testing.T) {
	h := newPageHub(&fakeSource{}, time.Second)
	ch, cancel := h.subscribe()
	defer cancel()
	select {
	case b := <-ch:
		t.Fatalf("an event before any sample: %s", b)
	default:
	}
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		h.tick(protocol.Stats{Time: t0.Add(time.Duration(i) * time.Second)}, protocol.Stats{Time: t0.Add(time.Duration(i+1) * time.Second)})
	}
	if b := <-ch; !strings.Contains(string(b), `"full":false`) || strings.Count(string(b), `"t":`) != 1 || !strings.Contains(string(b), `"p99":-1`) {
		t.Errorf("a running stream's event: %s", b)
	}
	ch2, cancel2 := h.subscribe()
	defer cancel2()
	if b := <-ch2; !strings.Contains(string(b), `"full":true`) || strings.Count(string(b), `"t":`) != 3 {
		t.Errorf("a new stream's first event: %s", b)
	}
	if !math.IsNaN(protocol.Histogram{}.Quantile(0.5)) {
		t.Error("the quantile of nothing is not NaN")
	}
}
