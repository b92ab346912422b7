package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/protocol"
)

// TestExecutesHoldNothing: once every execute has replied, whichever way
// it went (a noop, a conflict and the attempts after it, a tensor
// claimed, a worker killed under it and the redispatch, a timeout in
// the worker), no snapshot is held (the store's history can be trimmed)
// and no tensor block is left to a dispatch or an invocation. An
// execute's continuation keeps its snapshot in place (cas.Store.Take):
// a path that forgot to release it shows here.
func TestExecutesHoldNothing(t *testing.T) {
	for _, mode := range []durable.Mode{durable.None, durable.Sync} {
		t.Run(mode.String(), func(t *testing.T) {
			h := start(t, 2, func(c *Config) {
				c.HeavySize, c.VIPAfter, c.MaxRedispatch = 16<<20, 1, 2
				if mode != durable.None {
					c.StateDir, c.Durability = t.TempDir(), mode
				}
			})
			calls := []struct{ process, args string }{
				{"noop", ""},
				{"counter.add", `{"by":1}`},
				{"tensor.fill", `{"key":"k","n":4096,"value":1}`},
				{"fault.crash", ""},
				{"fault.sleep", `{"ms":200}`},
			}
			var wg sync.WaitGroup
			for i := range 6 {
				c := h.dial(t)
				wg.Go(func() {
					for j := range 20 {
						call := calls[(i+j)%len(calls)]
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						r := client.Request{Process: call.process}
						if call.args != "" {
							r.Args = json.RawMessage(call.args)
						}
						if call.process == "fault.sleep" {
							r.Timeout = 50 * time.Millisecond // ends in the worker
						}
						_, err := c.Do(ctx, r)
						cancel()
						// A crash fails what its worker ran with it, once
						// the redispatches are spent; fault.sleep times out.
						if err != nil && !errors.Is(err, protocol.ErrWorkerCrashed) && call.process != "fault.sleep" {
							t.Errorf("%s: %v", call.process, err)
						}
					}
				})
			}
			wg.Wait()
			if h.s.redispatches.Load() == 0 {
				t.Error("no worker crash was redispatched: the test missed that path")
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				held := h.s.store.Stats().Snapshots
				var blocks []string
				for _, b := range h.s.zone.Describe() {
					if strings.Contains(b, `owner "i:`) || strings.Contains(b, `owner "d:`) {
						blocks = append(blocks, b)
					}
				}
				if held == 0 && len(blocks) == 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("10s after the last reply: %d snapshots held, blocks not committed nor freed: %s", held, strconv.Quote(strings.Join(blocks, "; ")))
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestWaitingDispatchCarriesInputs: an execute that finds every worker
// full sends its Dispatch later from a goroutine, which makes it again
// from the execute's snapshot. It must carry that snapshot's inputs:
// counters, one per client (no conflicts: every execute stays on the
// continuation path), incremented by executes that all wait for the one
// worker's one slot end at the number of increments (an input left out
// would restart a count).
func TestWaitingDispatchCarriesInputs(t *testing.T) {
	h := start(t, 1, func(c *Config) { c.Pool.MaxInFlight = 1 })
	const clients, rounds = 6, 10
	var wg sync.WaitGroup
	for i := range clients {
		c := h.dial(t)
		wg.Go(func() {
			for range rounds {
				if _, err := c.Exec(t.Context(), "counters.add", map[string]any{"key": "c" + strconv.Itoa(i), "by": 1}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := range clients {
		if got := h.value(t, "domain.counters.c"+strconv.Itoa(i)); got != strconv.Itoa(rounds) {
			t.Errorf("counter %d is %s after %d increments", i, got, rounds)
		}
	}
	if q := h.s.Stats().DispatchQueue; q != 0 {
		t.Fatalf("dispatch queue %d after the executes", q)
	}
}
