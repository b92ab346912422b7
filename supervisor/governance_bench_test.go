package supervisor

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/theus-run/theus/durable"
	"github.com/theus-run/theus/schema"
)

// benchSchema puts a schema on the path counters.add writes.
const benchSchema = `
domain.counters.*: {type: integer, minimum: 0, maximum: 1000000000000}
`

// BenchmarkGovernedCommit: issue 13's figure, a commit with a 10-rule
// audit recipe (benchRecipe) and a schema on the changed path against
// one with neither. Two supervisors run side by side and blocks of 50
// sequential counters.add execs alternate between them, so the load of a
// shared machine falls on both alike; it reports ns/op of each and their
// ratio (target: at most 1.3).
func BenchmarkGovernedCommit(b *testing.B) {
	for _, dur := range []string{"none", "sync"} {
		b.Run("durability="+dur, func(b *testing.B) {
			gate, err := schema.Parse("schema.yaml", []byte(benchSchema))
			if err != nil {
				b.Fatal(err)
			}
			var execs [2]func()
			for i := range execs {
				cfg := Config{Workers: 1}
				if dur == "sync" {
					cfg.StateDir, cfg.Durability = b.TempDir(), durable.Sync
				}
				if i == 1 {
					cfg.Audit = writeRecipe(b, filepath.Join(b.TempDir(), "audit.yaml"), benchRecipe)
					cfg.Schema = gate
				}
				c := benchClient(b, benchSupervisorWith(b, cfg))
				args := map[string]any{"key": "e", "by": 1}
				execs[i] = func() {
					if _, err := c.Exec(context.Background(), "counters.add", args); err != nil {
						b.Fatal(err)
					}
				}
			}
			const block = 50
			var spent [2]time.Duration
			var calls [2]int
			b.ResetTimer()
			for n := 0; n < b.N; n += block {
				for i := range execs {
					k := min(block, b.N-n)
					t := time.Now()
					for range k {
						execs[i]()
					}
					spent[i] += time.Since(t)
					calls[i] += k
				}
			}
			none := float64(spent[0].Nanoseconds()) / float64(calls[0])
			governed := float64(spent[1].Nanoseconds()) / float64(calls[1])
			b.ReportMetric(none, "ns/op-none")
			b.ReportMetric(governed, "ns/op-governed")
			b.ReportMetric(governed/none, "ratio")
		})
	}
}
