package cas

import (
	"encoding/json"
	"testing"
)

// FuzzCanonicalArgs: the canonical form of JSON is JSON (or empty, for
// null), its own canonical form, and holds the same value.
func FuzzCanonicalArgs(f *testing.F) {
	for _, s := range []string{`{"b":2,"a":[1,2.50,{"c":null}]}`, `null`, `"\u00e9\ud800"`, `1e400`, ` [ ] `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, args []byte) {
		if !json.Valid(args) {
			return
		}
		c := canonicalArgs(args)
		if len(c) == 0 {
			var v any
			if err := json.Unmarshal(args, &v); err != nil || v != nil {
				t.Fatalf("%q has an empty canonical form", args)
			}
			return
		}
		if !json.Valid(c) {
			t.Fatalf("%q: canonical form %q is not JSON", args, c)
		}
		if cc := canonicalArgs(c); string(cc) != string(c) {
			t.Fatalf("%q: canonical form %q, whose canonical form is %q", args, c, cc)
		}
		var a, b any
		json.Unmarshal(args, &a)
		json.Unmarshal(c, &b)
		if ja, _ := json.Marshal(a); string(ja) != string(mustMarshal(t, b)) {
			t.Fatalf("%q and its canonical form %q hold different values", args, c)
		}
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
