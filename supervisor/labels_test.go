package supervisor

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/theus-run/theus/internal/golabel/golabeltest"
)

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
			golabeltest.Await(t, 5*time.Second, want)
		})
	}
}
