package supervisor

import (
	"context"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/schema"
)

// BenchmarkModes: noop and counter.add (one hot key) through the client,
// 16 in flight, in training mode against smart, in one run. Smart's
// counter.add pays for conflicts, retries and VIP tickets; training's
// runs each call once (and loses updates).
func BenchmarkModes(b *testing.B) {
	for _, mode := range []cas.Mode{cas.Smart, cas.Training} {
		for _, process := range []string{"noop", "counter.add"} {
			b.Run("mode="+mode.String()+"/process="+process, func(b *testing.B) {
				c := benchClient(b, benchSupervisorWith(b, Config{Workers: 2, Mode: mode}))
				ctx := context.Background()
				calls(b, 16, func() error {
					_, err := c.Exec(ctx, process, nil)
					return err
				})
			})
		}
	}
}

// BenchmarkSchemaGate: counters.add on one key, one call in flight, with
// a schema on the changed path (domain.counters.*) against none: the
// gate's cost per commit.
func BenchmarkSchemaGate(b *testing.B) {
	for _, gated := range []bool{false, true} {
		name := "schema=none"
		var g *schema.Gate
		if gated {
			name = "schema=changed-path"
			var err error
			if g, err = schema.Parse("bench.yaml", []byte("domain.counters.*: {type: integer, minimum: 0}\n")); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(name, func(b *testing.B) {
			c := benchClient(b, benchSupervisorWith(b, Config{Workers: 1, Schema: g}))
			ctx := context.Background()
			args := map[string]any{"key": "a"}
			calls(b, 1, func() error {
				_, err := c.Exec(ctx, "counters.add", args)
				return err
			})
		})
	}
}
