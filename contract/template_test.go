package contract

import (
	"errors"
	"fmt"
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
