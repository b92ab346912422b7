package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/flux"
)

// BenchmarkFluxStep: one workflow step against one direct exec of the
// same process (counters.add), both one commit each, sequential, with the
// state in memory (durability=none) and on disk (durability=sync). A step
// costs its exec plus the engine: evaluating its args, writing the run's
// head and history entry in the same commit, with an op id. Compare the
// ns/step of impl=flux with the ns/op of impl=exec (no op id) and
// impl=exec-opid (each exec with an op id of its own) of the same
// durability.
func BenchmarkFluxStep(b *testing.B) {
	const chunk = 500 // steps per run
	for _, dur := range []string{"none", "sync"} {
		cfg := func(b *testing.B) Config {
			c := Config{Workers: 1, Flux: b.TempDir()}
			if err := os.WriteFile(filepath.Join(c.Flux, "steps.yaml"), []byte(stepsFlow(chunk, "f")), 0o600); err != nil {
				b.Fatal(err)
			}
			if dur == "sync" {
				c.StateDir, c.Durability = b.TempDir(), durable.Sync
			}
			return c
		}
		b.Run("durability="+dur+"/impl=exec", func(b *testing.B) {
			h := benchSupervisorWith(b, cfg(b))
			c := benchClient(b, h)
			ctx := context.Background()
			args := map[string]string{"key": "e"}
			b.ResetTimer()
			for range b.N {
				if _, err := c.Exec(ctx, "counters.add", args); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The same exec with an op id: a step has one (its run's id and
		// position), which costs the journal the op id's records.
		b.Run("durability="+dur+"/impl=exec-opid", func(b *testing.B) {
			h := benchSupervisorWith(b, cfg(b))
			c := benchClient(b, h)
			ctx := context.Background()
			args := map[string]string{"key": "e"}
			prefix := client.NewOpID()
			b.ResetTimer()
			for i := range b.N {
				if _, err := c.Do(ctx, client.Request{Process: "counters.add", Args: args, OpID: prefix + "." + strconv.Itoa(i)}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("durability="+dur+"/impl=flux", func(b *testing.B) {
			h := benchSupervisorWith(b, cfg(b))
			ctx := context.Background()
			b.ResetTimer()
			t := time.Now()
			steps := 0
			for steps < b.N {
				v, err := h.s.flux.Run(ctx, flux.RunRequest{Name: "steps"})
				if err != nil || v.Status != flux.StatusComplete {
					b.Fatalf("%+v %v", v, err)
				}
				steps += chunk
			}
			b.ReportMetric(float64(time.Since(t).Nanoseconds())/float64(steps), "ns/step")
		})
	}
}
