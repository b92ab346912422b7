package schema_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/schema"
)

// BenchmarkCheck: checking one changed path costs the same whatever the
// number of patterns (the trie visits the path's segments only). hit: a
// pattern matches and its schema validates the value; miss: none does.
func BenchmarkCheck(b *testing.B) {
	for _, patterns := range []int{1, 100, 10000} {
		var sb strings.Builder
		sb.WriteString(`{"domain.accounts.*": {"type": "integer", "minimum": 0}`)
		for i := 1; i < patterns; i++ {
			fmt.Fprintf(&sb, `, "domain.t%d.*.v": {"type": "integer"}`, i)
		}
		sb.WriteString("}")
		g, err := schema.Parse("bench.json", []byte(sb.String()))
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct {
			name string
			path contract.Path
		}{{"hit", "domain.accounts.alice"}, {"miss", "domain.counters.alice"}} {
			b.Run(fmt.Sprintf("patterns=%d/%s", patterns, c.name), func(b *testing.B) {
				v := []byte("12345")
				for b.Loop() {
					if err := g.Check(c.path, v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
