package supervisor

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/protocol"
)

// Runs that read different keys under one declared input never conflict:
// the worker reports what it read and the commit is validated on that.
// Each of 32 goroutines adds to its own key, all in flight together.
func TestDisjointKeysDoNotConflict(t *testing.T) {
	h := start(t, 2, nil)
	ctx := context.Background()
	const clients, adds = 32, 20
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			args := fmt.Appendf(nil, `{"key":"k%d"}`, i)
			for range adds {
				if rep := h.s.Execute(ctx, &protocol.Execute{Process: "counter.add", Args: args}); rep.Err != nil {
					t.Error(rep.Err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range clients {
		g := h.s.Get(&protocol.Get{Path: demo.CountersPath + ".k" + strconv.Itoa(i)})
		if g.Err != nil || len(g.Entries) != 1 || string(g.Entries[0].Value) != strconv.Itoa(adds) {
			t.Fatalf("counter k%d: %+v", i, g)
		}
	}
	if n := h.s.conflicts.Load(); n != 0 {
		t.Fatalf("%d conflicts between adds to different keys", n)
	}
}
