package contract

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSpecBind(t *testing.T) {
	s, err := NewSpec("bank.transfer", []string{"domain.accounts.{from}", "domain.accounts.{to}", "domain.rates.{cur?}"},
		[]string{"domain.accounts.{from}", "domain.accounts.{to}"}, Pure)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Templated() {
		t.Fatal("a spec with templates says it is fixed")
	}
	c, err := s.Bind([]byte(`{"from":"alice","to":"bob","amount":3}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Inputs, c.Outputs); got != "[domain.accounts.alice domain.accounts.bob] [domain.accounts.alice domain.accounts.bob]" {
		t.Fatalf("bound %s", got)
	}
	if c.CheckRead("domain.accounts.carol") == nil || c.CheckRead("domain.accounts.alice") != nil {
		t.Fatal("the bound contract covers the wrong accounts")
	}
	c, err = s.Bind([]byte(`{"from":"a","to":"b","cur":"eur"}`))
	if err != nil || len(c.Inputs) != 3 || c.Inputs[2] != "domain.rates.eur" {
		t.Fatalf("optional arg given: %v %v", c.Inputs, err)
	}
	for _, bad := range []string{
		`{"to":"b"}`,                     // missing
		`{"from":"","to":"b"}`,           // empty
		`{"from":3,"to":"b"}`,            // not a string
		`{"from":"a.b","to":"b"}`,        // two segments
		`{"from":"internal_x","to":"b"}`, // changes the zone
		`{"from":"heavy","to":"b"}`,
		`{"from":"a b","to":"b"}`, // not a segment
		`[1]`,                     // not an object
		`{"from":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","to":"b"}`,
	} {
		if _, err := s.Bind([]byte(bad)); !errors.Is(err, ErrBadArg) {
			t.Errorf("args %s: err = %v, want ErrBadArg", bad, err)
		}
	}
}

func TestSpecFixedAndInvalid(t *testing.T) {
	s, err := NewSpec("counter.add", []string{"domain.counter"}, []string{"domain.counter"}, Pure)
	if err != nil || s.Templated() {
		t.Fatalf("%v %v", s.Templated(), err)
	}
	if c, err := s.Bind([]byte(`not json at all`)); err != nil || len(c.Inputs) != 1 {
		t.Fatalf("a fixed spec ignores its args: %v %v", c, err)
	}
	for _, decl := range [][]string{
		{"{ns}.x"},               // the layer
		{"domain.{}"},            // no name
		{"domain.{Key}"},         // bad name
		{"domain.{key"},          // unclosed
		{"domain.x{key}"},        // not a whole segment
		{"domain.internal_{k}"},  // not a whole segment either
		{"domain.internal.{k}x"}, // trailing
	} {
		if _, err := NewSpec("p", decl, nil, Pure); !errors.Is(err, ErrInvalidContract) {
			t.Errorf("%v: err = %v, want ErrInvalidContract", decl, err)
		}
	}
	if _, err := NewSpec("p", nil, []string{"domain.const_x.{k}"}, Pure); err == nil {
		t.Error("a templated CONST output was accepted")
	}
}

func FuzzSpecBind(f *testing.F) {
	s, err := NewSpec("p", []string{"domain.a.{k}", "domain.b.{o?}"}, []string{"domain.a.{k}"}, Pure)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"k":"x"}`))
	f.Add([]byte(`{"k":"x","o":"y"}`))
	f.Add([]byte(`{"k":"internal_x"}`))
	f.Fuzz(func(t *testing.T, args []byte) {
		c, err := s.Bind(args)
		if err != nil {
			return
		}
		// Whatever binds stays one segment below its declared parent,
		// in the DATA zone.
		for _, p := range append(c.Inputs, c.Outputs...) {
			parent, _ := p.Parent()
			if (parent != "domain.a" && parent != "domain.b") || p.Zone() != ZoneData {
				t.Fatalf("args %q bound %s", args, p)
			}
		}
	})
}

// The template grammar: a whole segment {name} or {name?}, name
// [a-z_][a-z0-9_]*, never the first segment.
func TestTemplateGrammar(t *testing.T) {
	good := map[string]string{
		"domain.{a}":          "a",
		"domain.{z}":          "z",
		"domain.{_}":          "_",
		"domain.{a0}":         "a0",
		"domain.{_9}":         "_9",
		"domain.{from_acct}":  "from_acct",
		"domain.{key?}":       "key",
		"domain.x.{k}.y":      "k",
		"global.{k}.{j?}.sub": "k",
	}
	for decl, arg := range good {
		s, err := NewSpec("p", []string{decl}, nil, Pure)
		if err != nil || !s.Templated() {
			t.Errorf("%s: %v (templated %v)", decl, err, s.Templated())
			continue
		}
		if _, ok := s.Fixed(); ok {
			t.Errorf("%s: Fixed says a templated spec is fixed", decl)
		}
		c, err := s.Bind([]byte(`{"` + arg + `":"v","j":"w"}`))
		if err != nil || len(c.Inputs) != 1 || !strings.Contains(string(c.Inputs[0]), ".v") {
			t.Errorf("%s bound with %s=v: %v %v", decl, arg, c.Inputs, err)
		}
	}
	bad := map[string]string{
		"{ns}.x":       "cannot be a template",
		"{ns?}":        "cannot be a template",
		"domain.{}":    "needs an arg name",
		"domain.{?}":   "needs an arg name",
		"domain.{A}":   "an arg name is",
		"domain.{aB}":  "an arg name is",
		"domain.{0}":   "an arg name is",
		"domain.{9a}":  "an arg name is",
		"domain.{a-b}": "an arg name is",
		"domain.{a?b}": "an arg name is",
		"domain.{a??}": "an arg name is",
		"domain.{`}":   "an arg name is", // 'a'-1
		"domain.{a{}":  "an arg name is", // 'z'+1
		"domain.{a/}":  "an arg name is", // '0'-1
		"domain.{a:}":  "an arg name is", // '9'+1
		"domain.{^}":   "an arg name is", // '_'-1
		"domain.{é}":   "an arg name is",
		"domain.{k":    "a template is {name} or {name?}",
		"domain.{k}x":  "a template is {name} or {name?}",
		"domain.x{k}":  `invalid path "domain.x{k}"`,
		"domain.k}":    `invalid path "domain.k}"`,
		"domain..{k}":  `invalid path "domain..x"`, // checked with {k} bound to x
		"domain.{k}.":  `invalid path "domain.x."`,
	}
	for decl, want := range bad {
		for _, in := range []bool{true, false} {
			var err error
			if in {
				_, err = NewSpec("p", []string{decl}, nil, Pure)
			} else {
				_, err = NewSpec("p", nil, []string{decl}, Pure)
			}
			if !errors.Is(err, ErrInvalidContract) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s (input %v): err = %v, want ErrInvalidContract with %q", decl, in, err, want)
			}
		}
	}
}

func TestSpecFixed(t *testing.T) {
	s, err := NewSpec("counter.add", []string{"domain.counter", "global.rate"}, []string{"domain.counter"}, Effect)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := s.Fixed()
	if !ok || c.Name != "counter.add" || fmt.Sprint(c.Inputs, c.Outputs) != "[domain.counter global.rate] [domain.counter]" || c.Semantic != Effect {
		t.Fatalf("Fixed = %+v, %v", c, ok)
	}
	for decl, want := range map[string]error{"domain..x": ErrInvalidPath, "domain.a b": ErrInvalidPath, "domain.internal_x": ErrPrivateRead} {
		if _, err := NewSpec("p", []string{decl}, nil, Pure); !errors.Is(err, want) {
			t.Errorf("fixed %s: err = %v, want %v", decl, err, want)
		}
	}
}

// Absent args: no args, JSON null, an arg that is null; an optional
// template leaves its path out, a required one is a bad arg.
func TestSpecBindAbsent(t *testing.T) {
	opt, err := NewSpec("p", []string{"domain.a", "domain.b.{o?}"}, []string{"domain.c.{o?}.x"}, Pure)
	if err != nil {
		t.Fatal(err)
	}
	req, err := NewSpec("p", []string{"domain.a.{k}"}, nil, Pure)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range []string{"", "null", "{}", `{"o":null}`, `{"o":""}`, `{"k":"x"}`} {
		c, err := opt.Bind([]byte(args))
		if err != nil || fmt.Sprint(c.Inputs, c.Outputs) != "[domain.a] []" {
			t.Errorf("optional, args %q: %v %v, %v", args, c.Inputs, c.Outputs, err)
		}
		if args == `{"k":"x"}` {
			continue
		}
		if _, err := req.Bind([]byte(args)); !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), `arg "k" is needed`) {
			t.Errorf("required, args %q: err = %v, want ErrBadArg", args, err)
		}
	}
	c, err := opt.Bind([]byte(`{"o":"v"}`))
	if err != nil || fmt.Sprint(c.Inputs, c.Outputs) != "[domain.a domain.b.v] [domain.c.v.x]" {
		t.Errorf("optional given: %v %v, %v", c.Inputs, c.Outputs, err)
	}
	// Args that are not an object, or an arg that is not a string, are
	// bad even when every template is optional.
	for _, args := range []string{`{"k":null}`, `{"k":["x"]}`, `{"k":{}}`, `{"k":true}`, `{"k":3}`, `"k"`, `[1]`, `{`} {
		if _, err := req.Bind([]byte(args)); !errors.Is(err, ErrBadArg) {
			t.Errorf("required, args %s: err = %v, want ErrBadArg", args, err)
		}
		optArgs := strings.ReplaceAll(args, `"k"`, `"o"`)
		if args == `{"k":null}` {
			continue // an optional arg may be null
		}
		if _, err := opt.Bind([]byte(optArgs)); !errors.Is(err, ErrBadArg) {
			t.Errorf("optional, args %s: err = %v, want ErrBadArg", optArgs, err)
		}
	}
	// A template only in the outputs binds like one in the inputs.
	out, err := NewSpec("p", []string{"domain.a"}, []string{"domain.b.{k}"}, Pure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Bind([]byte(`{}`)); !errors.Is(err, ErrBadArg) {
		t.Errorf("an output template without its arg: err = %v, want ErrBadArg", err)
	}
	if c, err := out.Bind([]byte(`{"k":"v"}`)); err != nil || fmt.Sprint(c.Inputs, c.Outputs) != "[domain.a] [domain.b.v]" {
		t.Errorf("an output template bound: %v %v, %v", c.Inputs, c.Outputs, err)
	}
}

// A bound segment is at most MaxArgSegment bytes.
func TestSpecBindSegmentLength(t *testing.T) {
	s, err := NewSpec("p", []string{"domain.{k}"}, nil, Pure)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", MaxArgSegment)
	if c, err := s.Bind([]byte(`{"k":"` + long + `"}`)); err != nil || string(c.Inputs[0]) != "domain."+long {
		t.Fatalf("a %d-byte arg: %v %v", MaxArgSegment, c.Inputs, err)
	}
	if _, err := s.Bind([]byte(`{"k":"` + long + `a"}`)); !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), "129 bytes, over 128") {
		t.Fatalf("a %d-byte arg: %v", MaxArgSegment+1, err)
	}
}

// An arg that makes a bound path too long is a bad arg, like every Bind
// error: NewSpec checked the path with a one-byte binding.
func TestSpecBindPathTooLong(t *testing.T) {
	prefix := "domain." + strings.Repeat("x", 200)
	s, err := NewSpec("p", []string{prefix + ".{k}"}, nil, Pure)
	if err != nil {
		t.Fatal(err)
	}
	fits := strings.Repeat("a", MaxPathLen-len(prefix)-1)
	if c, err := s.Bind([]byte(`{"k":"` + fits + `"}`)); err != nil || len(c.Inputs[0]) != MaxPathLen {
		t.Fatalf("a path of exactly MaxPathLen: %v %v", c.Inputs, err)
	}
	_, err = s.Bind([]byte(`{"k":"` + fits + `a"}`))
	if !errors.Is(err, ErrBadArg) || !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("a bound path over MaxPathLen: err = %v, want ErrBadArg wrapping ErrInvalidPath", err)
	}
}

// A bad value is reported against the arg that carried it.
func TestSpecBindNamesTheArg(t *testing.T) {
	s, err := NewSpec("p", []string{"domain.a.{from}"}, []string{"domain.b.{to?}"}, Pure)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{`"a b"`, `"a.b"`, `"internal_x"`, `"` + strings.Repeat("a", MaxArgSegment+1) + `"`, `3`, `""`} {
		for _, arg := range []string{"from", "to"} {
			args := `{"from":"ok","` + arg + `":` + v + `}`
			if arg == "to" && v == `""` {
				continue // an empty optional arg leaves its path out
			}
			_, err := s.Bind([]byte(args))
			if !errors.Is(err, ErrBadArg) || !strings.Contains(err.Error(), `arg "`+arg+`"`) {
				t.Errorf("args %s: err = %v, want ErrBadArg naming arg %q", args, err, arg)
			}
		}
	}
}
