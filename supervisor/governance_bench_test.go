package supervisor

import (
	"path/filepath"
	"testing"

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
			var cfgs [2]Config
			for i := range cfgs {
				cfgs[i].Workers = 1
				if dur == "sync" {
					cfgs[i].StateDir, cfgs[i].Durability = b.TempDir(), durable.Sync
				}
			}
			cfgs[1].Audit = writeRecipe(b, filepath.Join(b.TempDir(), "audit.yaml"), benchRecipe)
			cfgs[1].Schema = gate
			interleaved(b, cfgs, "governed")
		})
	}
}
