package supervisor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/internal/testprocs"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/schema"
)

// schemaLog is the log schema.log appends to, and schemaSig the signal
// it publishes beside.
const (
	schemaLog = testprocs.SchemaLog
	schemaSig = testprocs.SchemaSig
)

const testSchema = `
domain.counters.*: {type: integer, maximum: 10}
domain.log_events.*:
  type: object
  required: [kind]
`

func startWithSchema(t *testing.T, mode cas.Mode) *harness {
	t.Helper()
	g, err := schema.Parse("test.yaml", []byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	return start(t, 1, func(c *Config) { c.Schema, c.Mode = g, mode })
}

// TestSchemaViolationChangesNothing: a commit whose new value breaks the
// schema of a `*` pattern is refused with schema_violation naming the path
// and the keyword, runs once, and leaves the value and the version as
// they were; other keys under the pattern are checked the same way. The
// gate holds in training mode too.
func TestSchemaViolationChangesNothing(t *testing.T) {
	for _, mode := range []cas.Mode{cas.Smart, cas.Training} {
		t.Run(mode.String(), func(t *testing.T) { testSchemaViolation(t, mode) })
	}
}

func testSchemaViolation(t *testing.T, mode cas.Mode) {
	h := startWithSchema(t, mode)
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, key := range []string{"a", "b"} {
		path := demo.CountersPath + "." + key
		if _, err := c.Exec(ctx, "counters.add", map[string]any{"key": key, "by": 7}); err != nil {
			t.Fatal(err)
		}
		before, err := c.Get(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		rep := h.s.Execute(ctx, &protocol.Execute{ID: 1, Process: "counters.add", Args: []byte(`{"key":"` + key + `","by":4}`)})
		if rep.Err == nil || rep.Err.Code != protocol.CodeSchemaViolation || rep.Err.Path != path ||
			!strings.Contains(rep.Err.Message, "maximum") || !strings.Contains(rep.Err.Message, path) {
			t.Fatalf("7+4 at %s: %+v (err %v); want schema_violation naming %s and maximum", path, rep, rep.Err, path)
		}
		if rep.Attempts != 1 {
			t.Fatalf("a schema violation ran %d times, want once", rep.Attempts)
		}
		after, err := c.Get(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if after.Version != before.Version || string(after.Entries[0].Value) != string(before.Entries[0].Value) {
			t.Fatalf("%s: %s at version %d after the refusal, was %s at %d", path,
				after.Entries[0].Value, after.Version, before.Entries[0].Value, before.Version)
		}
	}
	// Paths no pattern matches are not checked.
	if _, err := c.Exec(ctx, "counter.add", map[string]any{"by": 1000}); err != nil {
		t.Fatalf("counter.add outside the patterns: %v", err)
	}
}

// TestSchemaChecksAppendedEntries: an appended entry is checked against
// the patterns of LOG.*; the signal published beside it is not state and
// is not checked (no pattern may name a signal path).
func TestSchemaChecksAppendedEntries(t *testing.T) {
	h := startWithSchema(t, cas.Smart)
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Exec(ctx, "schema.log", map[string]any{"kind": "start"}); err != nil {
		t.Fatal(err)
	}
	v := h.s.store.Version()
	_, err := c.Exec(ctx, "schema.log", map[string]any{"other": 1})
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeSchemaViolation || pe.Path != schemaLog || !strings.Contains(pe.Message, `"required"`) {
		t.Fatalf("an entry without kind: %v; want schema_violation at %s naming required", err, schemaLog)
	}
	if h.s.store.Version() != v {
		t.Fatalf("version %d after a refused append, want %d", h.s.store.Version(), v)
	}
	g, err := c.Get(ctx, schemaLog)
	if err != nil || len(g.Entries) != 1 {
		t.Fatalf("log after one good and one bad append: %+v, %v; want one entry", g, err)
	}
}

// TestSchemaGateIsOptional: without a gate nothing is checked.
func TestSchemaGateIsOptional(t *testing.T) {
	h := start(t, 1, nil)
	c := h.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Do(ctx, client.Request{Process: "counters.add", Args: map[string]any{"key": "a", "by": 11}})
	if err != nil || string(res.Result) != "11" {
		t.Fatalf("counters.add without a schema: %v, %v", res, err)
	}
}
