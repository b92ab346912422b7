package schema

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/theus-run/theus/contract"
)

// Gate holds compiled schemas in a trie of pattern segments. It is
// immutable once built and safe for concurrent use.
type Gate struct {
	root *node
	n    int // patterns
}

// node is one segment of the trie: the literal segments below it, the `*`
// below it, and the patterns that end here.
type node struct {
	next  map[string]*node
	star  *node
	rules []*rule
}

type rule struct {
	pattern string
	sch     *jsonschema.Schema
}

func (g *Gate) add(segs []string, r *rule) {
	n := g.root
	for _, s := range segs {
		if s == "*" {
			if n.star == nil {
				n.star = &node{}
			}
			n = n.star
			continue
		}
		if n.next == nil {
			n.next = map[string]*node{}
		}
		c, ok := n.next[s]
		if !ok {
			c = &node{}
			n.next[s] = c
		}
		n = c
	}
	n.rules = append(n.rules, r)
	g.n++
}

// Len is the number of patterns.
func (g *Gate) Len() int {
	if g == nil {
		return 0
	}
	return g.n
}

// Violation is a value that a schema refuses.
type Violation struct {
	Path    contract.Path // where the value was written (an append: the log)
	Pattern string        // the pattern whose schema refused it
	Keyword string        // the keyword that failed: "minimum", "required", "type"
	At      string        // where in the value, a JSON pointer ("" for the whole value)
	Reason  string        // what the schema says
}

func (v *Violation) Error() string {
	at := ""
	if v.At != "" {
		at = " at " + v.At
	}
	return fmt.Sprintf("schema: %s: value%s fails %q of %s: %s", v.Path, at, v.Keyword, v.Pattern, v.Reason)
}

// Check returns a *Violation if a schema whose pattern matches p refuses
// value (JSON), else nil. Its cost is the depth of p times the `*`s that
// match on the way, whatever the number of patterns.
func (g *Gate) Check(p contract.Path, value []byte) error {
	return g.check(p, false, value)
}

// CheckEntry is Check for an entry appended to the log at p: the patterns
// that match p.* apply.
func (g *Gate) CheckEntry(p contract.Path, value []byte) error {
	return g.check(p, true, value)
}

func (g *Gate) check(p contract.Path, entry bool, value []byte) error {
	if g == nil || g.n == 0 {
		return nil
	}
	var rules []*rule
	g.root.match(string(p), entry, &rules)
	if len(rules) == 0 {
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return &Violation{Path: p, Pattern: rules[0].pattern, Keyword: "type", Reason: "not JSON: " + err.Error()}
	}
	for _, r := range rules {
		if err := r.sch.Validate(doc); err != nil {
			return violation(p, r.pattern, err)
		}
	}
	return nil
}

// match appends to out the rules of every pattern that matches rest (the
// path's segments from here on), then, when entry, one more segment that
// only a `*` matches.
func (n *node) match(rest string, entry bool, out *[]*rule) {
	if rest == "" {
		if !entry {
			*out = append(*out, n.rules...)
		} else if n.star != nil {
			*out = append(*out, n.star.rules...)
		}
		return
	}
	seg, tail, more := strings.Cut(rest, ".")
	if more && tail == "" {
		return // not a path: ends with a dot
	}
	if c, ok := n.next[seg]; ok {
		c.match(tail, entry, out)
	}
	if n.star != nil {
		n.star.match(tail, entry, out)
	}
}

// violation turns a validation error into a Violation naming the first
// leaf cause: the keyword that failed, not the schema that contains it.
func violation(p contract.Path, pattern string, err error) *Violation {
	v := &Violation{Path: p, Pattern: pattern, Keyword: "?", Reason: err.Error()}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return v
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	if kp := ve.ErrorKind.KeywordPath(); len(kp) > 0 {
		v.Keyword = strings.Join(kp, "/")
	}
	if len(ve.InstanceLocation) > 0 {
		v.At = "/" + strings.Join(ve.InstanceLocation, "/")
	}
	v.Reason = leafReason(ve)
	return v
}

// leafReason is the library's message for one error, without the lines
// it prints for the causes (a leaf has none) and the location prefix.
func leafReason(ve *jsonschema.ValidationError) string {
	s := ve.Error()
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimPrefix(s, "- ")
	if _, after, ok := strings.Cut(s, "': "); ok && strings.HasPrefix(s, "at '") {
		s = after
	}
	return strings.TrimPrefix(s, "jsonschema validation failed with ")
}
