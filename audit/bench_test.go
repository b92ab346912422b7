package audit

import (
	"testing"

	"github.com/theus-run/theus/contract"
)

// BenchmarkCheck: the audit's own work on one call of a 10-rule recipe
// (the supervisor's BenchmarkAuditCommit recipe): the inputs, the outputs
// of a one-write delta, and the judgement of the one I violation.
func BenchmarkCheck(b *testing.B) {
	r, err := Parse("bench.yaml", []byte(`process_recipes:
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
`))
	if err != nil {
		b.Fatal(err)
	}
	rs := r.For("counters.add")
	tr := NewTracker(nil)
	args := []byte(`{"key":"e","by":1}`)
	value := []byte("12345")
	written := func(p contract.Path, visit func([]byte)) {
		if p == "domain.counters.e" {
			visit(value)
		}
	}
	b.ReportAllocs()
	for range b.N {
		if vs := rs.CheckInputs(args); len(vs) != 0 {
			b.Fatal(vs)
		}
		vs := rs.CheckOutputs(args, written)
		if len(vs) != 1 {
			b.Fatal(vs)
		}
		tr.Judge(rs, vs, false)
		tr.Record(rs, vs, nil)
	}
}
