package supervisor

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/worker"
)

// bigResultProcess returns a result of n bytes.
func bigResultProcess() worker.Def {
	return worker.Process("test.big", worker.Contract{}, func(_ *worker.Ctx, in struct {
		N int `json:"n"`
	}) (string, error) {
		return strings.Repeat("x", in.N), nil
	})
}

// TestSlowClientStallsNobody: on the continuation path the reader of a
// worker's ring replies to every client in turn. A client that pipelines
// executes with large replies and never reads them must not hold up
// another client's executes on the same worker: its replies wait for a
// writer of their own.
func TestSlowClientStallsNobody(t *testing.T) {
	for _, goroutines := range []bool{false, true} {
		t.Run("goroutine-per-execute="+strconv.FormatBool(goroutines), func(t *testing.T) {
			h := start(t, 1, func(c *Config) { c.GoroutinePerExecute = goroutines })
			slow, err := net.Dial("unix", h.sock)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			var frames []byte
			for i := range 256 {
				frames, err = protocol.AppendFrame(frames, &protocol.Execute{ID: uint64(i + 1), Process: "test.big", Args: []byte(`{"n":65536}`)})
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, err := slow.Write(frames); err != nil { // 16 MiB of replies that nobody reads
				t.Fatal(err)
			}
			c := h.dial(t)
			// Well under the write timeout (ipc.DefaultWriteTimeout, 10 s)
			// that a reader stuck on the slow client would wait out, and
			// far above what 50 noops take.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			for i := range 50 {
				if _, err := c.Exec(ctx, "noop", nil); err != nil {
					t.Fatalf("execute %d of a client beside a slow one: %v (after %v)", i, err, time.Since(start))
				}
			}
		})
	}
}
