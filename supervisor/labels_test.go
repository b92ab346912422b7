package supervisor

import (
	"bytes"
	"context"
	"runtime/pprof"
	"slices"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/theus-run/theus/internal/golabel"
)

// loopsNow returns the loop labels of the process's goroutines now (a
// goroutine profile), with how many goroutines carry each.
func loopsNow(t *testing.T) map[string]int64 {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	loops := map[string]int64{}
	for _, s := range p.Sample {
		for _, l := range s.Label[golabel.Loop] {
			loops[l] += s.Value[0]
		}
	}
	return loops
}

// The supervisor's long-lived goroutines carry labels that name their
// loop, so that a CPU profile tells how busy each one is (theus-bench
// --cpu-profile): each client connection's, each worker's ring and
// socket readers, the journal's.
func TestGoroutinesNameTheirLoop(t *testing.T) {
	h := start(t, 2, func(c *Config) { c.StateDir = t.TempDir() })
	ctx := context.Background()
	for range 2 {
		c := h.dial(t)
		for range 4 {
			if _, err := c.Exec(ctx, "noop", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	loops := loopsNow(t)
	for _, want := range []string{"conn 1", "conn 2", "worker-ring 0", "worker-ring 1", "worker-socket 0", "worker-socket 1", "journal", "journal-notify"} {
		if loops[want] == 0 {
			names := make([]string, 0, len(loops))
			for l := range loops {
				names = append(names, l)
			}
			slices.Sort(names)
			t.Errorf("no goroutine labeled %q; the labels: %q", want, names)
		}
	}
}
