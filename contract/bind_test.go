package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// bindReference is Bind as it was before argValues: args decoded by
// encoding/json into a map of every member, each templated path split
// and parsed again per call. It is the oracle of FuzzBindMatchesReference
// and the baseline of BenchmarkBind.
func bindReference(s Spec, args []byte) (Contract, error) {
	if s.fixed != nil {
		return *s.fixed, nil
	}
	var fields map[string]json.RawMessage
	if len(args) > 0 && string(args) != "null" {
		if err := json.Unmarshal(args, &fields); err != nil {
			return Contract{}, fmt.Errorf("%w: %s: args are not a JSON object: %v", ErrBadArg, s.Name, err)
		}
	}
	paths := func(decl []string) ([]Path, error) {
		out := make([]Path, 0, len(decl))
	next:
		for _, d := range decl {
			if strings.Contains(d, "{") {
				segs := strings.Split(d, ".")
				for i, seg := range segs {
					t, ok, _ := parseTmpl(seg)
					if !ok {
						continue
					}
					raw, ok := fields[t.name]
					var v string
					if ok && string(raw) != "null" {
						if err := json.Unmarshal(raw, &v); err != nil {
							return nil, fmt.Errorf("%w: arg %q: want a string", ErrBadArg, t.name)
						}
					}
					if v == "" {
						if t.optional {
							continue next
						}
						return nil, fmt.Errorf("%w: arg %q is needed", ErrBadArg, t.name)
					}
					if err := plainSegment(v); err != nil {
						return nil, fmt.Errorf("%w: arg %q: %w", ErrBadArg, t.name, err)
					}
					segs[i] = v
				}
				d = strings.Join(segs, ".")
			}
			p, err := Parse(d)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadArg, err)
			}
			out = append(out, p)
		}
		return out, nil
	}
	in, err := paths(s.Inputs)
	if err != nil {
		return Contract{}, err
	}
	out, err := paths(s.Outputs)
	if err != nil {
		return Contract{}, err
	}
	return New(s.Name, in, out, s.Semantic)
}

func referenceSpec(t testing.TB) Spec {
	s, err := NewSpec("p",
		[]string{"domain.a.{k}", "domain.b.{o?}", "domain.c.{k}.{o?}", "global.fixed"},
		[]string{"domain.a.{k}", "domain.d.{to}.x"}, Pure)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bindCases are args whose contract (or refusal) Bind must agree on
// with encoding/json's reading of them.
var bindCases = []string{
	``, `null`, ` null `, `{}`, `[]`, `"k"`, `5`, `true`, `{`, `{"k":"x"`, `{"k":"x",}`, `{"k":"x"} x`,
	`{"k":"x","to":"y"}`, `{"k":"x","to":"y","o":"z"}`, `{"k":"x","to":"y","o":null}`,
	`{"k":"x","to":"y","o":""}`, `{"k":"x","to":"y","o":5}`, `{"k":5,"to":"y"}`,
	`{"k":"x","k":"w","to":"y"}`, `{"k":5,"k":"w","to":"y"}`, `{"k":"w","k":5,"to":"y"}`,
	`{"k":"x","to":"y","other":{"a":[1,2,{"b":null}]},"n":1e999}`, `{"k":"x","to":"y","other":[}`,
	`{"k":"a.b","to":"y"}`, `{"k":"internal_x","to":"y"}`, `{"k":"const_x","to":"y"}`,
	`{"k":"\u0078","to":"y"}`, `{"k":"x\ud800","to":"y"}`, "{\"k\":\"x\xff\",\"to\":\"y\"}",
	`{"k":"` + strings.Repeat("x", 129) + `","to":"y"}`, `{"k":"` + strings.Repeat("x", 128) + `","to":"` + strings.Repeat("y", 128) + `"}`,
	`{"k":"x","to":"y","o":{"deep":true}}`, `{"k":["x"],"to":"y"}`, `{"k":"x","to":"y"}  `, ` {"k":"x","to":"y"}`,
	`{"K":"x","to":"y"}`, `{"k":"x","to":"y","":""}`,
}

// Bind reads args as encoding/json did: the same contract, or a refusal
// (wrapping ErrBadArg) where it refused.
func TestBindMatchesReference(t *testing.T) {
	s := referenceSpec(t)
	for _, args := range bindCases {
		checkBindMatches(t, s, []byte(args))
	}
}

func FuzzBindMatchesReference(f *testing.F) {
	s := referenceSpec(f)
	for _, args := range bindCases {
		f.Add([]byte(args))
	}
	f.Fuzz(func(t *testing.T, args []byte) { checkBindMatches(t, s, args) })
}

func checkBindMatches(t *testing.T, s Spec, args []byte) {
	t.Helper()
	got, err := s.Bind(args)
	want, werr := bindReference(s, args)
	if (err == nil) != (werr == nil) {
		t.Fatalf("args %q: Bind = %v, %v; encoding/json's reading: %v, %v", args, got, err, want, werr)
	}
	if err != nil {
		if !errors.Is(err, ErrBadArg) {
			t.Fatalf("args %q: %v does not wrap ErrBadArg", args, err)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("args %q: Bind = %+v, encoding/json's reading %+v", args, got, want)
	}
}

// BenchmarkBind: one call's contract from its args, against the
// encoding/json reading of them measured in the same run
// (impl=reference): the ratio is the figure.
func BenchmarkBind(b *testing.B) {
	s := referenceSpec(b)
	args := []byte(`{"k":"counter_0042","to":"acct-17","amount":12,"note":"a transfer"}`)
	for _, impl := range []struct {
		name string
		bind func(Spec, []byte) (Contract, error)
	}{{"reference", bindReference}, {"bind", Spec.Bind}} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := impl.bind(s, args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Args larger than a pooled decoder may keep bind as small ones do.
func TestBindLargeArgs(t *testing.T) {
	s := referenceSpec(t)
	big := []byte(`{"note":"` + strings.Repeat("n", 2*maxPooledArgs) + `","k":"x","to":"y"}`)
	checkBindMatches(t, s, big)
	checkBindMatches(t, s, []byte(`{"k":"x","to":"y"}`))
}

// A Spec built without NewSpec is checked when it binds: a templated path
// deeper than a path may be is refused, never a panic.
func TestBindUncheckedSpec(t *testing.T) {
	deep := "domain." + strings.Repeat("s.", MaxPathDepth) + "{k}"
	for _, s := range []Spec{
		{Name: "p", Inputs: []string{deep}},
		{Name: "p", Inputs: []string{"domain.{k"}},
	} {
		if c, err := s.Bind([]byte(`{"k":"x"}`)); err == nil {
			t.Errorf("%v bound to %v", s.Inputs, c)
		}
	}
	s := Spec{Name: "p", Inputs: []string{"domain.a.{k}"}, Outputs: []string{"domain.a.{k}"}}
	if c, err := s.Bind([]byte(`{"k":"x"}`)); err != nil || len(c.Inputs) != 1 || c.Inputs[0] != "domain.a.x" {
		t.Errorf("a well-formed Spec without NewSpec: %v, %v", c, err)
	}
}
