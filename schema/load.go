package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/theus-run/theus/contract"
)

// LoadError is a schema file that cannot be used: unreadable, not a
// mapping of patterns to schemas, a bad pattern, or a schema that does
// not compile. File names the file; Pattern, when set, the entry.
type LoadError struct {
	File    string
	Pattern string
	Err     error
}

func (e *LoadError) Error() string {
	if e.Pattern != "" {
		return fmt.Sprintf("schema: %s: pattern %q: %v", e.File, e.Pattern, e.Err)
	}
	return fmt.Sprintf("schema: %s: %v", e.File, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Load reads and compiles the schema file at path: YAML unless its name
// ends in .json.
func Load(path string) (*Gate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &LoadError{File: path, Err: err}
	}
	return Parse(path, data)
}

// Parse compiles a schema file's contents; name is the file's name, which
// also says its format (.json: JSON, else YAML, of which JSON is a
// subset).
func Parse(name string, data []byte) (*Gate, error) {
	fail := func(pattern string, err error) (*Gate, error) {
		return nil, &LoadError{File: name, Pattern: pattern, Err: err}
	}
	js := data
	if !strings.EqualFold(filepath.Ext(name), ".json") {
		if err := noAliases(data); err != nil {
			return fail("", err)
		}
		var err error
		if js, err = yaml.YAMLToJSON(data); err != nil {
			return fail("", fmt.Errorf("not YAML: %w", err))
		}
	}
	entries, err := entries(js)
	if err != nil {
		return fail("", err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	g := &Gate{root: &node{}}
	for _, e := range entries {
		segs, err := parsePattern(e.pattern)
		if err != nil {
			return fail(e.pattern, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.schema))
		if err != nil {
			return fail(e.pattern, err)
		}
		url := fmt.Sprintf("theus-schema:///%d.json", g.n)
		if err := c.AddResource(url, doc); err != nil {
			return fail(e.pattern, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			return fail(e.pattern, err)
		}
		g.add(segs, &rule{pattern: e.pattern, sch: sch})
	}
	return g, nil
}

// noAliases refuses a YAML file with an alias (*name) before anything is
// decoded: nested aliases expand exponentially (a few hundred bytes to
// gigabytes), and a schema file needs none ($ref and $defs share a
// schema inside the file).
func noAliases(data []byte) error {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	if as := ast.FilterFile(ast.AliasType, f); len(as) > 0 {
		ln := 0
		if tk := as[0].GetToken(); tk != nil && tk.Position != nil {
			ln = tk.Position.Line
		}
		return fmt.Errorf("line %d: YAML aliases (*name) are not supported: use $ref and $defs", ln)
	}
	return nil
}

type entry struct {
	pattern string
	schema  json.RawMessage
}

// entries reads a JSON object in order, refusing a repeated key.
func entries(js []byte) ([]entry, error) {
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	at := func(err error) error {
		return fmt.Errorf("%w (byte %d)", err, d.InputOffset())
	}
	if t, err := d.Token(); err != nil {
		return nil, at(err)
	} else if t != json.Delim('{') {
		return nil, errors.New(`want a mapping of path patterns to schemas, like {"domain.accounts.*": {"type": "integer"}}`)
	}
	seen := map[string]bool{}
	var out []entry
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, at(err)
		}
		key := t.(string) // an object's keys are strings
		if seen[key] {
			return nil, fmt.Errorf("pattern %q appears twice", key)
		}
		seen[key] = true
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, at(err)
		}
		out = append(out, entry{pattern: key, schema: raw})
	}
	if _, err := d.Token(); err != nil {
		return nil, at(err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("more after the mapping")
	}
	return out, nil
}

// parsePattern checks a pattern (a path whose segments may be `*`) and
// returns its segments.
func parsePattern(p string) ([]string, error) {
	segs := strings.Split(p, ".")
	probe := make([]string, len(segs))
	for i, s := range segs {
		probe[i] = s
		if s == "*" {
			probe[i] = "x"
		} else if strings.Contains(s, "*") {
			return nil, errors.New("`*` must be a whole segment")
		}
	}
	path, err := contract.Parse(strings.Join(probe, "."))
	if err != nil {
		return nil, err
	}
	for _, z := range []contract.Zone{contract.ZonePrivate, contract.ZoneSignal} {
		if path.InZone(z) {
			return nil, fmt.Errorf("a %s path is never checked (the supervisor's records, or signals, which are not state)", z)
		}
	}
	return segs, nil
}

// noLoader refuses every $ref outside the file.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: a $ref resolves inside the schema file only", url)
}
