package supervisor

import (
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/theus-run/theus/internal/golabel"
)

// loopsIn returns, for each function named in fns, the loop labels of the
// goroutines whose stack holds it now (a goroutine profile), sorted; a
// goroutine without labels counts as "".
func loopsIn(t *testing.T, fns ...string) map[string][]string {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, s := range p.Sample {
		loop := strings.Join(s.Label[golabel.Loop], ",")
		for _, fn := range fns {
			if onStack(s, fn) {
				for range s.Value[0] {
					out[fn] = append(out[fn], loop)
				}
			}
		}
	}
	for _, l := range out {
		slices.Sort(l)
	}
	return out
}

func onStack(s *profile.Sample, fn string) bool {
	for _, l := range s.Location {
		for _, ln := range l.Line {
			if ln.Function != nil && strings.HasSuffix(ln.Function.Name, fn) {
				return true
			}
		}
	}
	return false
}

// The supervisor's long-lived goroutines carry labels that name their
// loop, so that a CPU profile tells how busy each one is (theus-bench
// --cpu-profile): each worker's ring and socket readers by its PID, each
// client connection's reader, the journal's. With a goroutine per
// execute, every execute hands the reading on to a kept goroutine, which
// must take the connection's labels, not keep another's.
func TestGoroutinesNameTheirLoop(t *testing.T) {
	for _, perExecute := range []bool{false, true} {
		t.Run(fmt.Sprintf("GoroutinePerExecute=%v", perExecute), func(t *testing.T) {
			h := start(t, 2, func(c *Config) {
				c.StateDir = t.TempDir()
				c.GoroutinePerExecute = perExecute
			})
			ctx := context.Background()
			for range 2 {
				c := h.dial(t)
				for range 8 {
					if _, err := c.Exec(ctx, "counter.add", nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			var ring, socket []string
			for _, pid := range h.s.WorkerPIDs() {
				ring = append(ring, "worker-ring "+strconv.Itoa(pid))
				socket = append(socket, "worker-socket "+strconv.Itoa(pid))
			}
			slices.Sort(ring)
			slices.Sort(socket)
			want := map[string][]string{
				"pool.(*proc).readRing":              ring,
				"pool.(*proc).read":                  socket,
				"supervisor.(*Supervisor).readConn":  {"conn 1", "conn 2"}, // one reader each: an execute's old one has returned
				"supervisor.(*Supervisor).serveConn": {"conn 1", "conn 2"}, // each waits for its connection's end
				"durable.(*Journal).run":             {"journal"},
				"durable.(*Journal).notifier":        {"journal-notify"},
			}
			fns := make([]string, 0, len(want))
			for fn := range want {
				fns = append(fns, fn)
			}
			var got map[string][]string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				got = loopsIn(t, fns...)
				ok := true
				for fn, w := range want {
					ok = ok && slices.Equal(got[fn], w)
				}
				if ok {
					return
				}
				if time.Now().After(deadline) {
					break
				}
			}
			for fn, w := range want {
				if !slices.Equal(got[fn], w) {
					t.Errorf("goroutines in %s: loops %q, want %q", fn, got[fn], w)
				}
			}
		})
	}
}
