package contract

import (
	"errors"
	"fmt"
	"strings"
)

// A declared path may name a segment after an argument of the call:
// "domain.accounts.{from}" is the account the call's "from" arg names,
// "domain.counters.{key?}" the counter its optional "key" names (absent
// or empty: the path is not declared for that call). A Spec holds such
// declarations; Bind makes the contract of one call. So a transfer
// declares, receives, is validated against and queues for VIP tickets on
// two accounts, not all of them.

// ErrBadArg is wrapped by Bind when an arg a template names is missing,
// not a string, not a plain segment, or makes its path too long.
var ErrBadArg = errors.New("contract: bad argument for a templated path")

// MaxArgSegment bounds a bound segment.
const MaxArgSegment = 128

// Spec is a process's declared contract, templates included.
type Spec struct {
	Name     string
	Inputs   []string // as declared
	Outputs  []string
	Semantic Semantic
	fixed    *Contract // the contract, when nothing is templated
	decls    *compiled // the declarations cut into segments, when templated
}

// tmpl is one {name} or {name?} segment.
type tmpl struct {
	name     string
	optional bool
}

// parseTmpl reports whether seg is a template, and which.
func parseTmpl(seg string) (tmpl, bool, error) {
	inner, ok := strings.CutPrefix(seg, "{")
	if !ok {
		return tmpl{}, false, nil
	}
	inner, ok = strings.CutSuffix(inner, "}")
	if !ok {
		return tmpl{}, false, fmt.Errorf("segment %q: a template is {name} or {name?}", seg)
	}
	t := tmpl{}
	t.name, t.optional = strings.CutSuffix(inner, "?")
	if t.name == "" {
		return tmpl{}, false, fmt.Errorf("segment %q: a template needs an arg name", seg)
	}
	for i := 0; i < len(t.name); i++ {
		c := t.name[i]
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return tmpl{}, false, fmt.Errorf("segment %q: an arg name is [a-z_][a-z0-9_]*", seg)
		}
	}
	return t, true, nil
}

// NewSpec validates a declaration. Each path must be valid with every
// template bound to a plain segment; the contract must be valid too.
func NewSpec(name string, inputs, outputs []string, sem Semantic) (Spec, error) {
	s := Spec{Name: name, Inputs: inputs, Outputs: outputs, Semantic: sem}
	templated := false
	for _, p := range append(append([]string(nil), inputs...), outputs...) {
		for i, seg := range strings.Split(p, ".") {
			_, ok, err := parseTmpl(seg)
			if err == nil && ok && i == 0 {
				err = errors.New("the first segment names the layer: it cannot be a template")
			}
			if err != nil {
				return Spec{}, fmt.Errorf("%w: %s: %s: %w", ErrInvalidContract, name, p, err)
			}
			templated = templated || ok
		}
	}
	if !templated {
		c, err := s.bind(nil, nil)
		if err != nil {
			return Spec{}, err
		}
		s.fixed = &c
		return s, nil
	}
	// Check the shape with every template bound to a plain segment.
	s.decls = compile(inputs, outputs)
	if _, err := s.bind(func(tmpl) (string, bool, error) { return "x", true, nil }, s.decls); err != nil {
		return Spec{}, err
	}
	return s, nil
}

// Templated reports whether the contract depends on the call's args.
func (s Spec) Templated() bool { return s.fixed == nil }

// Fixed returns the contract of a Spec with no template.
func (s Spec) Fixed() (Contract, bool) {
	if s.fixed == nil {
		return Contract{}, false
	}
	return *s.fixed, true
}

// Bind returns the contract of a call whose args (a JSON object, or
// empty) are args. Errors wrap ErrBadArg.
//
// It reads args once, as tokens, keeping only the strings its templates
// name (a duplicate name: the last one wins, as encoding/json decides
// into a map), and builds each templated path from its declaration cut
// into segments once: no reflection and no map of the whole object.
func (s Spec) Bind(args []byte) (Contract, error) {
	if s.fixed != nil {
		return *s.fixed, nil
	}
	decls := s.decls
	if decls == nil { // a Spec not made by NewSpec
		decls = compile(s.Inputs, s.Outputs)
	}
	var buf [4]argVal
	vals := argVals(buf[:0])
	vals = append(vals, make([]argVal, len(decls.names))...)
	if err := decls.argValues(s.Name, args, vals); err != nil {
		return Contract{}, err
	}
	c, err := s.bind(func(t tmpl) (string, bool, error) {
		a := decls.get(vals, t.name)
		if a.kind != 0 && a.kind != '"' && a.kind != 'n' {
			return "", false, fmt.Errorf("%w: %s: arg %q names a path segment: want a string", ErrBadArg, s.Name, t.name)
		}
		v := a.s
		if v == "" {
			if t.optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("%w: %s: arg %q is needed: it names a path segment", ErrBadArg, s.Name, t.name)
		}
		if err := plainSegment(v); err != nil {
			return "", false, fmt.Errorf("%w: %s: arg %q: %w", ErrBadArg, s.Name, t.name, err)
		}
		return v, true, nil
	}, decls)
	var pe *PathError
	if !errors.Is(err, ErrBadArg) && errors.As(err, &pe) {
		// NewSpec checked each path with its templates bound to one
		// byte: only a longer arg makes one invalid now.
		return Contract{}, fmt.Errorf("%w: %s: %w", ErrBadArg, s.Name, pe)
	}
	return c, err
}

// plainSegment checks a bound value: one segment of the DATA kind, so a
// binding never adds depth or changes a path's zone.
func plainSegment(v string) error {
	if len(v) > MaxArgSegment {
		return fmt.Errorf("%d bytes, over %d", len(v), MaxArgSegment)
	}
	if strings.Contains(v, ".") {
		return fmt.Errorf("%q has a dot: it names one segment", v)
	}
	if err := validate(v); err != nil {
		return err
	}
	if z := segmentZone(v); z != ZoneData {
		return fmt.Errorf("%q names the %s zone", v, z)
	}
	return nil
}

// bind builds the contract with each template's value from val (ok
// false: leave the path out); val nil means there is no template (then
// decls may be nil).
func (s Spec) bind(val func(tmpl) (string, bool, error), decls *compiled) (Contract, error) {
	if decls == nil {
		decls = compile(s.Inputs, s.Outputs)
	}
	paths := func(decl []declPath) ([]Path, error) {
		out := make([]Path, 0, len(decl))
	next:
		for _, d := range decl {
			text := d.text
			// A path deeper than a path may be (only in a Spec not made by
			// NewSpec) stays as declared: New refuses it.
			if val != nil && len(d.tmpls) > 0 && len(d.segs) <= MaxPathDepth {
				var bound [MaxPathDepth]string
				n := len(d.segs) - 1 // the dots
				for i, seg := range d.segs {
					if t := d.tmpls[i]; t != nil {
						v, keep, err := val(*t)
						if err != nil {
							return nil, err
						}
						if !keep {
							continue next
						}
						seg = v
					}
					bound[i] = seg
					n += len(seg)
				}
				var b strings.Builder
				b.Grow(n)
				for i, seg := range bound[:len(d.segs)] {
					if i > 0 {
						b.WriteByte('.')
					}
					b.WriteString(seg)
				}
				text = b.String()
			}
			out = append(out, Path(text)) // New validates it
		}
		return out, nil
	}
	in, err := paths(decls.inputs)
	if err != nil {
		return Contract{}, err
	}
	out, err := paths(decls.outputs)
	if err != nil {
		return Contract{}, err
	}
	return New(s.Name, in, out, s.Semantic)
}
