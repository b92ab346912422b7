package audit

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"unicode/utf8"

	"github.com/theus-run/theus/contract"
)

// Violation is one rule a call broke.
type Violation struct {
	Rule   *Rule
	Path   string          // the args field (inputs) or the bound context path (outputs)
	Value  json.RawMessage // the value checked
	Reason string          // which condition failed, and how
}

// maxShown bounds a value quoted in a reason.
const maxShown = 120

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > maxShown {
		return string(b[:maxShown]) + "…"
	}
	return string(b)
}

func boundCond(kind string, bound float64) cond {
	return cond{kind: kind, test: func(v any) string {
		f, ok := v.(float64)
		switch {
		case !ok:
			return fmt.Sprintf("%s: %s is not a number", kind, show(v))
		case kind == "min" && f < bound:
			return fmt.Sprintf("%s is under min %s", show(v), strconv.FormatFloat(bound, 'g', -1, 64))
		case kind == "max" && f > bound:
			return fmt.Sprintf("%s is over max %s", show(v), strconv.FormatFloat(bound, 'g', -1, 64))
		}
		return ""
	}}
}

// length is a string's length in characters, a list's in items, an
// object's in keys.
func length(v any) (int, bool) {
	switch x := v.(type) {
	case string:
		return utf8.RuneCountInString(x), true
	case []any:
		return len(x), true
	case map[string]any:
		return len(x), true
	}
	return 0, false
}

func lenCond(kind string, bound int) cond {
	return cond{kind: kind, test: func(v any) string {
		n, ok := length(v)
		switch {
		case !ok:
			return fmt.Sprintf("%s: %s has no length (not a string, list or object)", kind, show(v))
		case kind == "min_len" && n < bound:
			return fmt.Sprintf("length %d is under min_len %d", n, bound)
		case kind == "max_len" && n > bound:
			return fmt.Sprintf("length %d is over max_len %d", n, bound)
		}
		return ""
	}}
}

// eqCond compares any JSON values: numbers by value (1 equals 1.0),
// strings, booleans, null, lists and objects by content.
func eqCond(kind string, want any) cond {
	return cond{kind: kind, test: func(v any) string {
		same := reflect.DeepEqual(v, want)
		switch {
		case kind == "eq" && !same:
			return fmt.Sprintf("%s is not eq %s", show(v), show(want))
		case kind == "neq" && same:
			return fmt.Sprintf("%s is neq %s", show(v), show(want))
		}
		return ""
	}}
}

func inCond(vals []any) cond {
	return cond{kind: "in", test: func(v any) string {
		for _, w := range vals {
			if reflect.DeepEqual(v, w) {
				return ""
			}
		}
		return fmt.Sprintf("%s is not in %s", show(v), show(vals))
	}}
}

func regexCond(re *regexp.Regexp) cond {
	return cond{kind: "regex", test: func(v any) string {
		s, ok := v.(string)
		switch {
		case !ok:
			return fmt.Sprintf("regex: %s is not a string", show(v))
		case !re.MatchString(s):
			return fmt.Sprintf("%s does not match regex %s", show(v), re)
		}
		return ""
	}}
}

// check returns why v breaks the rule (its first failing condition), or
// "".
func (r *Rule) check(v any) string {
	for _, c := range r.conds {
		if why := c.test(v); why != "" {
			return why
		}
	}
	return ""
}

func (r *Rule) violation(path string, v any, why string) Violation {
	raw, _ := json.Marshal(v)
	return Violation{Rule: r, Path: path, Value: raw, Reason: why}
}

// field walks a dotted path into decoded args: object keys, and list
// indexes for lists.
func field(v any, segs []string) (any, bool) {
	for _, s := range segs {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[s]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(s)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// CheckInputs checks the call's args (a JSON object) against the input
// rules. A field the args do not have is not checked.
func (rs *Rules) CheckInputs(args []byte) []Violation {
	if rs == nil || len(rs.Inputs) == 0 {
		return nil
	}
	var decoded any
	if len(args) > 0 {
		if err := json.Unmarshal(args, &decoded); err != nil {
			return nil // the supervisor refuses args that are not JSON before this
		}
	}
	var out []Violation
	for _, r := range rs.Inputs {
		v, ok := field(decoded, r.args)
		if !ok {
			continue
		}
		if why := r.check(v); why != "" {
			out = append(out, r.violation(r.Field, v, why))
		}
	}
	return out
}

// Written calls visit with each value the delta writes at p: the value a
// set leaves there, or each entry appended to it. A delete, or no write,
// visits nothing.
type Written func(p contract.Path, visit func(value []byte))

// CheckOutputs checks the values a commit would write, each output rule
// at its path bound with the call's args (a templated segment the args do
// not bind leaves the rule out for the call, as it leaves the path out of
// a contract). A path the commit does not write is not checked. Rules on
// the same field share one binding and one decoding of each value.
func (rs *Rules) CheckOutputs(args []byte, written Written) []Violation {
	if rs == nil || len(rs.Outputs) == 0 {
		return nil
	}
	var out []Violation
	for _, g := range rs.outGroups() {
		c, err := g[0].spec.Bind(args)
		if err != nil || len(c.Outputs) == 0 {
			continue // the process's own contract refuses such args first
		}
		p := c.Outputs[0]
		written(p, func(raw []byte) {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return // not JSON: the supervisor fails such a write first
			}
			for _, r := range g {
				if why := r.check(v); why != "" {
					out = append(out, r.violation(string(p), v, why))
				}
			}
		})
	}
	return out
}

// outGroups are the output rules grouped by field, in the order each
// field first appears.
func (rs *Rules) outGroups() [][]*Rule {
	if rs.groups == nil {
		at := map[string]int{}
		for _, r := range rs.Outputs {
			i, ok := at[r.Field]
			if !ok {
				i = len(rs.groups)
				at[r.Field] = i
				rs.groups = append(rs.groups, nil)
			}
			rs.groups[i] = append(rs.groups[i], r)
		}
	}
	return rs.groups
}
