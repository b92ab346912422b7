package supervisor

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/pool"
	"github.com/theus-run/theus/protocol"
)

// TestEvilRingWorker: a plugin's code that maps its worker's ring pair
// (THEUS_RING_FD) and scribbles on it, then dies (kill) or runs on
// (hang), costs the supervisor only that worker: the Execute fails, the
// supervisor goes on serving on new workers, and Shutdown (the harness's
// cleanup) returns with every worker gone.
func TestEvilRingWorker(t *testing.T) {
	h := start(t, 2, func(c *Config) {
		c.Pool.Transport = pool.TransportRing
		c.Pool.KillGrace = 200 * time.Millisecond
	})
	c := h.dial(t)
	ctx := context.Background()
	for _, mode := range []string{"kill", "hang", "kill", "hang"} {
		done := make(chan error, 1)
		go func() {
			_, err := c.Do(ctx, client.Request{Process: "evil.ring", Args: map[string]string{"mode": mode}, Timeout: time.Second})
			done <- err
		}()
		select {
		case err := <-done:
			want := protocol.ErrWorkerCrashed
			if mode == "hang" {
				want = protocol.ErrTimeout
			}
			if !errors.Is(err, want) {
				t.Fatalf("evil.ring %s: %v, want %v", mode, err, want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("evil.ring %s: no reply after a minute", mode)
		}
		// The workers that replace it serve.
		for range 20 {
			execOK(t, c, "counter.add", map[string]int{"by": 1})
		}
	}
}
