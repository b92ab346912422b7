package flux

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// This file walks go-yaml's AST: every value is read from its node, so
// every problem has the node's file:line:col.

// maxValueDepth bounds the nesting of a literal argument value.
const maxValueDepth = 64

// loader collects the problems of one file.
type loader struct {
	path     string
	known    func(string) bool
	problems []Problem
}

// pos returns n's position; a node without a token (an implicit null)
// takes the fallback.
func (l *loader) pos(n ast.Node, fallback Pos) Pos {
	if n == nil {
		return fallback
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return fallback
	}
	return Pos{File: l.path, Line: tk.Position.Line, Col: tk.Position.Column}
}

func (l *loader) problem(p Pos, format string, args ...any) {
	l.problems = append(l.problems, Problem{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

// entry is one key: value of a mapping.
type entry struct {
	key    string
	keyPos Pos
	value  ast.Node // nil or a NullNode when the key has no value
}

// value unwraps an anchor and refuses what Flux files do not use: aliases
// (whose expansion can be exponential), tags and merge keys. It returns nil
// for a refused node.
func (l *loader) value(n ast.Node, at Pos) ast.Node {
	for {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
			continue
		case *ast.AliasNode:
			l.problem(l.pos(x, at), "YAML aliases (*name) are not supported in Flux files")
			return nil
		case *ast.TagNode:
			l.problem(l.pos(x, at), "YAML tags (%s) are not supported in Flux files", x.Start.Value)
			return nil
		case *ast.MergeKeyNode:
			l.problem(l.pos(x, at), "YAML merge keys (<<) are not supported in Flux files")
			return nil
		}
		return n
	}
}

// isNull reports whether n is absent or an explicit null.
func isNull(n ast.Node) bool {
	if n == nil {
		return true
	}
	_, ok := n.(*ast.NullNode)
	return ok
}

// mapping returns n's entries in file order, or false (with a problem)
// when n is not a mapping. what names n for the message.
func (l *loader) mapping(n ast.Node, at Pos, what string) ([]entry, bool) {
	n = l.value(n, at)
	var pairs []*ast.MappingValueNode
	switch x := n.(type) {
	case *ast.MappingNode:
		pairs = x.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{x}
	case nil:
		return nil, false
	default:
		l.problem(l.pos(n, at), "%s must be a mapping, not %s", what, kindOf(n))
		return nil, false
	}
	out := make([]entry, 0, len(pairs))
	for _, mv := range pairs {
		keyNode := l.value(mv.Key, at)
		if keyNode == nil {
			continue
		}
		kp := l.pos(keyNode, at)
		key, ok := scalarText(keyNode)
		if !ok {
			l.problem(kp, "a key must be a plain scalar, not %s", kindOf(keyNode))
			continue
		}
		out = append(out, entry{key: key, keyPos: kp, value: mv.Value})
	}
	return out, true
}

func isMapping(n ast.Node) bool {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return true
	}
	return false
}

// scalarText returns the text of a scalar node: a string's value, or the
// token as written for a number, bool or null (so `version: 1.0` is "1.0").
func scalarText(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		return x.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode, *ast.InfinityNode, *ast.NanNode:
		return x.GetToken().Value, true
	}
	return "", false
}

// stringValue returns n's text when it is a string scalar (a plain, quoted
// or block string, not a number or bool).
func stringValue(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		return x.Value.Value, true
	}
	return "", false
}

// kindOf names a node's kind for messages.
func kindOf(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	}
	return "a " + strings.ToLower(n.Type().String())
}

// checkKeys reports every key of es not in allowed, and returns es by key.
func (l *loader) checkKeys(es []entry, where string, allowed ...string) map[string]entry {
	byKey := make(map[string]entry, len(es))
	for _, e := range es {
		ok := false
		for _, a := range allowed {
			ok = ok || e.key == a
		}
		if !ok {
			l.problem(e.keyPos, "unknown key %q in %s (allowed: %s)", e.key, where, strings.Join(allowed, ", "))
			continue
		}
		byKey[e.key] = e
	}
	return byKey
}

// toJSON converts a literal YAML value to JSON.
func (l *loader) toJSON(n ast.Node, at Pos, depth int) ([]byte, bool) {
	n = l.value(n, at)
	if n == nil {
		return nil, false
	}
	p := l.pos(n, at)
	if depth > maxValueDepth {
		l.problem(p, "value nested deeper than %d levels", maxValueDepth)
		return nil, false
	}
	switch x := n.(type) {
	case *ast.NullNode:
		return []byte("null"), true
	case *ast.BoolNode:
		return []byte(strconv.FormatBool(x.Value)), true
	case *ast.IntegerNode:
		switch v := x.Value.(type) {
		case int64:
			return []byte(strconv.FormatInt(v, 10)), true
		case uint64:
			return []byte(strconv.FormatUint(v, 10)), true
		}
	case *ast.FloatNode:
		return []byte(strconv.FormatFloat(x.Value, 'g', -1, 64)), true
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := stringValue(x)
		b, _ := json.Marshal(s)
		return b, true
	case *ast.SequenceNode:
		var b []byte
		b = append(b, '[')
		for i, item := range x.Values {
			v, ok := l.toJSON(item, p, depth+1)
			if !ok {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, v...)
		}
		return append(b, ']'), true
	case *ast.MappingNode, *ast.MappingValueNode:
		es, ok := l.mapping(x, p, "a value")
		if !ok {
			return nil, false
		}
		var b []byte
		b = append(b, '{')
		for i, e := range es {
			v, ok := l.toJSON(e.value, e.keyPos, depth+1)
			if !ok {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			k, _ := json.Marshal(e.key)
			b = append(append(append(b, k...), ':'), v...)
		}
		return append(b, '}'), true
	}
	l.problem(p, "%s cannot be converted to JSON", kindOf(n))
	return nil, false
}
