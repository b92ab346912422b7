package schema_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/schema"
)

const accountsJSON = `{
  "domain.accounts.*": {"type": "integer", "minimum": 0},
  "domain.users.*.profile": {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1}},
    "required": ["name"]
  },
  "domain.*.log_events.*": {"type": "object", "required": ["kind"]},
  "domain.config": {"enum": ["on", "off"]}
}`

const accountsYAML = `# the same schemas as accountsJSON
domain.accounts.*: {type: integer, minimum: 0}
domain.users.*.profile:
  type: object
  properties:
    name: {type: string, minLength: 1}
  required: [name]
"domain.*.log_events.*":
  type: object
  required: [kind]
domain.config:
  enum: ["on", "off"]
`

func TestCheck(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		entry       bool // an append to the log at path
		value       string
		wantKeyword string // "" for valid
		wantAt      string
	}{
		{name: "star matches one segment", path: "domain.accounts.alice", value: "10"},
		{name: "minimum", path: "domain.accounts.alice", value: "-1", wantKeyword: "minimum"},
		{name: "type", path: "domain.accounts.bob", value: `"ten"`, wantKeyword: "type"},
		{name: "star is one segment, not two", path: "domain.accounts.alice.note", value: `"anything"`},
		{name: "no pattern", path: "domain.other", value: "-5"},
		{name: "prefix of a pattern", path: "domain.accounts", value: `{"alice": -1}`},
		{name: "nested property", path: "domain.users.u1.profile", value: `{"name": ""}`, wantKeyword: "minLength", wantAt: "/name"},
		{name: "required", path: "domain.users.u1.profile", value: `{}`, wantKeyword: "required"},
		{name: "valid object", path: "domain.users.u1.profile", value: `{"name": "ann"}`},
		{name: "enum", path: "domain.config", value: `"maybe"`, wantKeyword: "enum"},
		{name: "appended entry", path: "domain.app.log_events", entry: true, value: `{"kind": "x"}`},
		{name: "appended entry refused", path: "domain.app.log_events", entry: true, value: `{"other": 1}`, wantKeyword: "required"},
		{name: "an entry matches only a star", path: "domain.accounts", entry: true, value: "-3", wantKeyword: "minimum"},
	}
	for _, format := range []struct{ file, text string }{{"s.json", accountsJSON}, {"s.yaml", accountsYAML}} {
		g, err := schema.Parse(format.file, []byte(format.text))
		if err != nil {
			t.Fatal(err)
		}
		if g.Len() != 4 {
			t.Fatalf("%s: %d patterns, want 4", format.file, g.Len())
		}
		for _, tt := range tests {
			t.Run(format.file+"/"+tt.name, func(t *testing.T) {
				p := contract.MustParse(tt.path)
				check := g.Check
				if tt.entry {
					check = g.CheckEntry
				}
				err := check(p, []byte(tt.value))
				if tt.wantKeyword == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				var v *schema.Violation
				if !errors.As(err, &v) {
					t.Fatalf("error %v, want a *schema.Violation", err)
				}
				if v.Path != p || v.Keyword != tt.wantKeyword || v.At != tt.wantAt {
					t.Fatalf("violation %+v: want path %s, keyword %q at %q", v, p, tt.wantKeyword, tt.wantAt)
				}
				if msg := err.Error(); !strings.Contains(msg, tt.path) || !strings.Contains(msg, tt.wantKeyword) {
					t.Fatalf("message %q does not name the path and the keyword", msg)
				}
			})
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name, file, text, want string
	}{
		{name: "not a mapping", file: "s.json", text: `[1, 2]`, want: "want a mapping"},
		{name: "bad JSON", file: "s.json", text: `{"domain.a": {"type": }`, want: "invalid character"},
		{name: "bad YAML", file: "s.yaml", text: "domain.a: {type: [", want: "not YAML"},
		{name: "unknown type", file: "s.json", text: `{"domain.a": {"type": "integr"}}`, want: `pattern "domain.a"`},
		{name: "schema not an object", file: "s.json", text: `{"domain.a": 5}`, want: `pattern "domain.a"`},
		{name: "partial star", file: "s.json", text: `{"domain.acc*": {}}`, want: "whole segment"},
		{name: "bad path", file: "s.json", text: `{"domain..a": {}}`, want: "empty segment"},
		{name: "private", file: "s.json", text: `{"domain.internal_runs.*": {}}`, want: "never checked"},
		{name: "signal", file: "s.yaml", text: "domain.sig_go: {}", want: "never checked"},
		{name: "twice", file: "s.json", text: `{"domain.a": {}, "domain.a": {}}`, want: "twice"},
		{name: "ref outside the file", file: "s.json", text: `{"domain.a": {"$ref": "/etc/passwd"}}`, want: "inside the schema file only"},
		{name: "trailing data", file: "s.json", text: `{"domain.a": {}} {}`, want: "more after"},
		{name: "remote ref", file: "s.json", text: `{"domain.a": {"$ref": "http://127.0.0.1:9/s.json"}}`, want: "inside the schema file only"},
		{name: "remote metaschema", file: "s.json", text: `{"domain.a": {"$schema": "http://127.0.0.1:9/meta.json"}}`, want: "inside the schema file only"},
		// Nested aliases expand exponentially: none is decoded.
		{name: "alias", file: "s.yaml", text: "domain.a: &a {type: integer}\ndomain.b: *a\n", want: "line 2: YAML aliases"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := schema.Parse(tt.file, []byte(tt.text))
			var le *schema.LoadError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.file) {
				t.Fatalf("error %v: want a *schema.LoadError naming %s with %q", err, tt.file, tt.want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "schema.yml")
	if err := os.WriteFile(f, []byte(accountsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := schema.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Check("domain.accounts.a", []byte("-1")); err == nil {
		t.Fatal("a YAML file's schema does not apply")
	}
	if _, err := schema.Load(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
