// Package schema owns the schema gate: JSON Schemas bound to path
// patterns, compiled once at start, that every new value a commit writes
// must satisfy. It never reads the Context and never decides what a
// commit writes: the supervisor asks it about each value of a delta, and
// finding the schemas for a path costs the path's depth, not the number
// of patterns.
//
// # Basics
//
// A schema file (JSON or YAML) maps patterns to schemas:
//
//	{"domain.accounts.*": {"type": "integer", "minimum": 0}}
//
// A pattern is a context path whose segments may be `*`, which matches
// exactly one segment. Every pattern that matches a path applies to the
// values set there; an append's entry is checked against the patterns that
// match ROOT.* (ROOT being the log's path).
//
// # Caveats
//
// A `$ref` resolves inside the file only: nothing is loaded from disk or
// the network. Only values written after the gate is in place are checked;
// the state already committed is not.
package schema
