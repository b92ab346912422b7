package supervisor

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/theus-run/theus/durable"
)

// benchRecipe is a 10-rule recipe on counters.add that every call
// passes: 6 rules on its args, 4 on the value its commit writes (a path
// bound with the call's key).
const benchRecipe = `audit: {level: B, threshold_max: 3, threshold_min: 1, reset_on_success: true}
process_recipes:
  counters.add:
    inputs:
      - {field: by, min: 0}
      - {field: by, max: 1000000}
      - {field: by, neq: 7}
      - {field: key, min_len: 1, max_len: 64}
      - {field: key, regex: "^[a-z]+$"}
      - {field: key, in: [e, f, g]}
    outputs:
      - {field: "domain.counters.{key}", min: 0}
      - {field: "domain.counters.{key}", max: 1000000000000}
      - {field: "domain.counters.{key}", neq: -1}
      - {field: "domain.counters.{key}", in: [-1, "x"], level: I}
`

// BenchmarkAuditCommit: one exec of counters.add through the client,
// sequential, with no recipe (recipe=none) and with benchRecipe
// (recipe=10rules), in memory and with durability sync: the cost of
// checking 10 rules on a commit. (The last rule breaks on every call, at
// level I: each call logs one violation, as a recipe that watches
// something does.) Compare ns/op of the two recipes of one durability.
//
// recipe=interleaved runs both supervisors side by side and alternates
// blocks of 50 calls between them, so that the load of a shared machine
// falls on both alike: it reports ns/op of each and their ratio.
func BenchmarkAuditCommit(b *testing.B) {
	for _, dur := range []string{"none", "sync"} {
		b.Run("durability="+dur+"/recipe=interleaved", func(b *testing.B) {
			var cfgs [2]Config
			for i := range cfgs {
				cfgs[i].Workers = 1
				if dur == "sync" {
					cfgs[i].StateDir, cfgs[i].Durability = b.TempDir(), durable.Sync
				}
			}
			cfgs[1].Audit = writeRecipe(b, filepath.Join(b.TempDir(), "audit.yaml"), benchRecipe)
			interleaved(b, cfgs, "10rules")
		})
		for _, recipe := range []string{"none", "10rules"} {
			b.Run("durability="+dur+"/recipe="+recipe, func(b *testing.B) {
				cfg := Config{Workers: 1}
				if dur == "sync" {
					cfg.StateDir, cfg.Durability = b.TempDir(), durable.Sync
				}
				if recipe != "none" {
					cfg.Audit = writeRecipe(b, filepath.Join(b.TempDir(), "audit.yaml"), benchRecipe)
				}
				h := benchSupervisorWith(b, cfg)
				c := benchClient(b, h)
				ctx := context.Background()
				args := map[string]any{"key": "e", "by": 1}
				b.ResetTimer()
				for range b.N {
					if _, err := c.Exec(ctx, "counters.add", args); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				if recipe != "none" {
					if _, total := h.s.audit.tracker.Log(1); total != uint64(b.N) {
						b.Fatalf("%d violations logged for %d calls", total, b.N)
					}
				}
			})
		}
	}
}

// interleaved serves a supervisor of each of cfgs and runs b.N sequential
// counters.add execs, alternating blocks of 50 between the two, so that
// the load of a shared machine falls on both alike. It reports each one's
// ns/op (ns/op-none for cfgs[0], ns/op-<label> for cfgs[1]) and the ratio
// of the second to the first.
func interleaved(b *testing.B, cfgs [2]Config, label string) {
	var execs [2]func()
	for i, cfg := range cfgs {
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
	base := float64(spent[0].Nanoseconds()) / float64(calls[0])
	other := float64(spent[1].Nanoseconds()) / float64(calls[1])
	b.ReportMetric(base, "ns/op-none")
	b.ReportMetric(other, "ns/op-"+label)
	b.ReportMetric(other/base, "ratio")
}
