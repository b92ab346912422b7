package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/theus-run/theus/contract"
)

// MaxRecipeSize bounds a recipe file.
const MaxRecipeSize = 4 << 20

// Problem is one thing wrong with a recipe, at a line of its file.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// LoadError is a recipe that does not load: every problem found, each
// with its file:line.
type LoadError struct{ Problems []Problem }

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads and compiles the recipe in file. Errors are a *LoadError.
func Load(file string) (*Recipe, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, &LoadError{Problems: []Problem{{File: file, Msg: err.Error()}}}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxRecipeSize+1))
	if err != nil {
		return nil, &LoadError{Problems: []Problem{{File: file, Msg: err.Error()}}}
	}
	if len(b) > MaxRecipeSize {
		return nil, &LoadError{Problems: []Problem{{File: file, Msg: fmt.Sprintf("over %d bytes", MaxRecipeSize)}}}
	}
	return Parse(file, b)
}

// Parse compiles a recipe's text; file names it in problems. Unknown keys
// are refused, every problem with its line.
func Parse(file string, data []byte) (*Recipe, error) {
	l := &loader{file: file}
	r := l.recipe(data)
	if len(l.problems) > 0 {
		return nil, &LoadError{Problems: l.problems}
	}
	return r, nil
}

type loader struct {
	file     string
	problems []Problem
}

func (l *loader) problem(n ast.Node, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: line(n), Msg: fmt.Sprintf(format, args...)})
}

func line(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

type entry struct {
	key   string
	keyN  ast.Node
	value ast.Node
}

// mapping returns n's entries, refusing duplicate keys; ok false (with a
// problem) when n is not a mapping.
func (l *loader) mapping(n ast.Node, what string) ([]entry, bool) {
	if a, ok := n.(*ast.AnchorNode); ok {
		n = a.Value
	}
	var pairs []*ast.MappingValueNode
	switch x := n.(type) {
	case *ast.MappingNode:
		pairs = x.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{x}
	case nil, *ast.NullNode:
		return nil, true
	default:
		l.problem(n, "%s must be a mapping", what)
		return nil, false
	}
	seen := map[string]bool{}
	out := make([]entry, 0, len(pairs))
	for _, mv := range pairs {
		if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
			l.problem(mv.Key, "YAML merge keys (<<) are not supported in recipes")
			continue
		}
		key, ok := scalar(mv.Key)
		if !ok {
			l.problem(mv.Key, "%s: a key must be a plain scalar", what)
			continue
		}
		if seen[key] {
			l.problem(mv.Key, "%s: key %q given twice", what, key)
			continue
		}
		seen[key] = true
		out = append(out, entry{key: key, keyN: mv.Key, value: mv.Value})
	}
	return out, true
}

func scalar(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return x.GetToken().Value, true
	}
	return "", false
}

// value decodes n as a JSON value (numbers as float64): what eq, neq and
// in compare.
func (l *loader) value(n ast.Node, what string) (any, bool) {
	var v any
	if err := yaml.NodeToValue(n, &v); err != nil {
		l.problem(n, "%s: %v", what, err)
		return nil, false
	}
	b, err := json.Marshal(v)
	if err != nil {
		l.problem(n, "%s: not a JSON value: %v", what, err)
		return nil, false
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		l.problem(n, "%s: not a JSON value: %v", what, err)
		return nil, false
	}
	return out, true
}

func (l *loader) number(n ast.Node, what string) (float64, bool) {
	v, ok := l.value(n, what)
	if !ok {
		return 0, false
	}
	f, ok := v.(float64)
	if !ok {
		l.problem(n, "%s: want a number", what)
	}
	return f, ok
}

func (l *loader) count(n ast.Node, what string) (int, bool) {
	f, ok := l.number(n, what)
	if !ok {
		return 0, false
	}
	if f < 0 || f != float64(int(f)) || f > 1<<31 {
		l.problem(n, "%s: want a whole number ≥ 0", what)
		return 0, false
	}
	return int(f), true
}

func (l *loader) str(n ast.Node, what string) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		return x.Value.Value, true
	}
	l.problem(n, "%s: want a string", what)
	return "", false
}

func (l *loader) boolean(n ast.Node, what string) (bool, bool) {
	if b, ok := n.(*ast.BoolNode); ok {
		return b.Value, true
	}
	l.problem(n, "%s: want true or false", what)
	return false, false
}

func (l *loader) level(n ast.Node, what string) (Level, bool) {
	s, ok := scalar(n)
	if !ok {
		l.problem(n, "%s: want a level (I, S, A, B, C)", what)
		return 0, false
	}
	lv, ok := ParseLevel(s)
	if !ok {
		l.problem(n, "%s: unknown level %q: want I, S, A, B or C (or Info, Stop, Abort, Block, Count)", what, s)
	}
	return lv, ok
}

// defaultKeys are the keys of the audit: section (and of the top level
// of an original recipe without one).
var defaultKeys = map[string]bool{"level": true, "threshold_max": true, "threshold_min": true, "reset_on_success": true, "max_retries": true}

func (l *loader) recipe(data []byte) *Recipe {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		ln := 0
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			ln = ye.GetToken().Position.Line
		}
		l.problems = append(l.problems, Problem{File: l.file, Line: ln, Msg: "not YAML: " + yaml.FormatError(err, false, false)})
		return nil
	}
	r := &Recipe{File: l.file, Defaults: Defaults{Level: Block, ThresholdMax: 3, ResetOnSuccess: true}, procs: map[string]*Rules{}}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return r // an empty recipe: no rules
	}
	// Aliases are refused before anything is decoded: nested ones expand
	// exponentially (a few hundred bytes to gigabytes), and a recipe
	// needs none.
	for _, a := range ast.FilterFile(ast.AliasType, f) {
		l.problem(a, "YAML aliases (*name) are not supported in recipes")
	}
	if len(l.problems) > 0 {
		return nil
	}
	if len(f.Docs) > 1 {
		l.problem(f.Docs[1], "a recipe is one YAML document")
	}
	top, ok := l.mapping(f.Docs[0].Body, "the recipe")
	if !ok {
		return nil
	}
	var procs ast.Node
	var topDefaults []entry
	haveAudit := false
	for _, e := range top {
		switch {
		case e.key == "audit":
			haveAudit = true
			es, _ := l.mapping(e.value, "audit")
			l.defaults(&r.Defaults, es)
		case e.key == "process_recipes":
			procs = e.value
		case defaultKeys[e.key]: // the original reads them at the top without an audit: section
			topDefaults = append(topDefaults, e)
		default:
			l.problem(e.keyN, "unknown key %q: a recipe has audit and process_recipes", e.key)
		}
	}
	if len(topDefaults) > 0 {
		if haveAudit {
			l.problem(topDefaults[0].keyN, "%s: give the defaults in audit: or at the top, not both", topDefaults[0].key)
		} else {
			l.defaults(&r.Defaults, topDefaults)
		}
	}
	ps, _ := l.mapping(procs, "process_recipes")
	for _, e := range ps {
		if e.key == "" {
			l.problem(e.keyN, "process_recipes: a process name is not empty")
			continue
		}
		rs := l.process(r, e)
		if rs != nil {
			rs.outGroups() // compiled once: a Recipe is read by many calls at once
			r.procs[e.key] = rs
			r.order = append(r.order, e.key)
		}
	}
	return r
}

func (l *loader) defaults(d *Defaults, es []entry) {
	seenMax := ""
	for _, e := range es {
		what := "audit." + e.key
		switch e.key {
		case "level":
			if lv, ok := l.level(e.value, what); ok {
				d.Level = lv
			}
		case "threshold_max", "max_retries": // max_retries: the original's older name
			if seenMax != "" {
				l.problem(e.keyN, "%s: %s is given already", what, seenMax)
				continue
			}
			seenMax = e.key
			if n, ok := l.count(e.value, what); ok {
				d.ThresholdMax = n
			}
		case "threshold_min":
			if n, ok := l.count(e.value, what); ok {
				d.ThresholdMin = n
			}
		case "reset_on_success":
			if b, ok := l.boolean(e.value, what); ok {
				d.ResetOnSuccess = b
			}
		default:
			l.problem(e.keyN, "unknown key %q in audit: want level, threshold_max, threshold_min, reset_on_success", e.key)
		}
	}
}

func (l *loader) process(r *Recipe, pe entry) *Rules {
	rs := &Rules{Process: pe.key, Line: line(pe.keyN), Reset: r.Defaults.ResetOnSuccess}
	es, ok := l.mapping(pe.value, "process_recipes."+pe.key)
	if !ok {
		return nil
	}
	for _, e := range es {
		var side Side
		switch e.key {
		case "inputs":
			side = Input
		case "outputs":
			side = Output
		default:
			l.problem(e.keyN, "unknown key %q in process_recipes.%s: want inputs, outputs", e.key, pe.key)
			continue
		}
		var items []ast.Node
		switch x := e.value.(type) {
		case *ast.SequenceNode:
			items = x.Values
		case nil, *ast.NullNode:
		default:
			l.problem(e.value, "process_recipes.%s.%s must be a list of rules", pe.key, e.key)
			continue
		}
		for i, it := range items {
			rule := l.rule(r.Defaults, pe.key, side, i, it)
			if rule == nil {
				continue
			}
			if side == Input {
				rs.Inputs = append(rs.Inputs, rule)
			} else {
				rs.Outputs = append(rs.Outputs, rule)
			}
		}
	}
	return rs
}

func (l *loader) rule(d Defaults, process string, side Side, i int, n ast.Node) *Rule {
	what := fmt.Sprintf("process_recipes.%s.%s[%d]", process, side, i)
	es, ok := l.mapping(n, what)
	if !ok {
		return nil
	}
	before := len(l.problems)
	r := &Rule{Process: process, Side: side, Index: i, Level: d.Level, Max: d.ThresholdMax, Min: d.ThresholdMin, Line: line(n)}
	var fieldN ast.Node
	var bounds [2]*float64 // min, max
	var lens [2]*int       // min_len, max_len
	for _, e := range es {
		w := what + "." + e.key
		switch e.key {
		case "field":
			r.Field, _ = l.str(e.value, w)
			fieldN = e.value
		case "level":
			if lv, ok := l.level(e.value, w); ok {
				r.Level = lv
			}
		case "max_threshold":
			if c, ok := l.count(e.value, w); ok {
				r.Max = c
			}
		case "min_threshold":
			if c, ok := l.count(e.value, w); ok {
				r.Min = c
			}
		case "message":
			r.Message, _ = l.str(e.value, w)
		case "min", "max":
			if f, ok := l.number(e.value, w); ok {
				idx := 0
				if e.key == "max" {
					idx = 1
				}
				bounds[idx] = &f
				r.conds = append(r.conds, boundCond(e.key, f))
			}
		case "min_len", "max_len":
			if c, ok := l.count(e.value, w); ok {
				idx := 0
				if e.key == "max_len" {
					idx = 1
				}
				lens[idx] = &c
				r.conds = append(r.conds, lenCond(e.key, c))
			}
		case "eq", "neq":
			if v, ok := l.value(e.value, w); ok {
				r.conds = append(r.conds, eqCond(e.key, v))
			}
		case "in":
			seq, isSeq := e.value.(*ast.SequenceNode)
			if !isSeq {
				l.problem(e.value, "%s: want a list of values", w)
				continue
			}
			vals := make([]any, 0, len(seq.Values))
			for j, vn := range seq.Values {
				if v, ok := l.value(vn, w+"["+strconv.Itoa(j)+"]"); ok {
					vals = append(vals, v)
				}
			}
			r.conds = append(r.conds, inCond(vals))
		case "regex":
			s, ok := l.str(e.value, w)
			if !ok {
				continue
			}
			re, err := compileRegex(s)
			if err != nil {
				l.problem(e.value, "%s: %v", w, err)
				continue
			}
			r.conds = append(r.conds, regexCond(re))
		default:
			l.problem(e.keyN, "unknown key %q in %s: want field, min, max, eq, neq, min_len, max_len, regex, in, level, max_threshold, min_threshold, message", e.key, what)
		}
	}
	switch {
	case fieldN == nil:
		l.problem(n, "%s: no field", what)
	case r.Field == "":
		l.problem(fieldN, "%s: the field is empty", what)
	case side == Input:
		r.args = strings.Split(r.Field, ".")
		for _, s := range r.args {
			if s == "" {
				l.problem(fieldN, "%s: field %q has an empty segment", what, r.Field)
				break
			}
		}
	default:
		spec, err := contract.NewSpec(process, nil, []string{r.Field}, contract.Effect)
		if err != nil {
			l.problem(fieldN, "%s: field %q: %v", what, r.Field, err)
		}
		r.spec = spec
	}
	if len(r.conds) == 0 && len(es) > 0 {
		l.problem(n, "%s: no condition (min, max, eq, neq, min_len, max_len, regex, in)", what)
	}
	if bounds[0] != nil && bounds[1] != nil && *bounds[0] > *bounds[1] {
		l.problem(n, "%s: min %v is over max %v: nothing passes", what, *bounds[0], *bounds[1])
	}
	if lens[0] != nil && lens[1] != nil && *lens[0] > *lens[1] {
		l.problem(n, "%s: min_len %d is over max_len %d: nothing passes", what, *lens[0], *lens[1])
	}
	if len(l.problems) > before {
		return nil
	}
	r.ID = fmt.Sprintf("%s[%d]:%s", side, i, r.Field)
	return r
}
