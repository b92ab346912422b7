package supervisor

import (
	"testing"

	"github.com/theus-run/theus/protocol"
)

// The same call spelled otherwise has the same digest; another process or
// other args, another digest; no op id, no digest.
func TestOpDigest(t *testing.T) {
	d := func(process, args string) string {
		var a []byte
		if args != "absent" {
			a = []byte(args)
		}
		x := opDigest(&protocol.Execute{Process: process, Args: a, OpID: "id"})
		if !x.Known() {
			t.Fatalf("%s %s: no digest", process, args)
		}
		return string(x[:])
	}
	same := [][]string{
		{`{"a":1,"b":2}`, `{"b":2, "a":1}`, " {\n\t\"a\" : 1 ,\"b\":2 } ", `{"a":0,"a":1,"b":2}`},
		{"absent", "", "null", " null "},
		{`{"s":"A\u00e9<"}`, `{"s":"\u0041é\u003c"}`},
		{`[1,{"y":[],"x":{}}]`, `[ 1 , { "x" : { } , "y" : [ ] } ]`},
		{`123456789012345678901234567890`, ` 123456789012345678901234567890 `},
	}
	seen := map[string]string{}
	for _, group := range same {
		first := d("p", group[0])
		for _, args := range group[1:] {
			if d("p", args) != first {
				t.Errorf("%s and %s: different digests", group[0], args)
			}
		}
		if other, ok := seen[first]; ok {
			t.Errorf("%s and %s: the same digest", group[0], other)
		}
		seen[first] = group[0]
	}
	for _, args := range []string{`{}`, `1.0`, `1e0`, `-0`, `"null"`, `[]`, `{"a":1,"b":2,"c":null}`, `{"a":"1","b":2}`} {
		if other, ok := seen[d("p", args)]; ok {
			t.Errorf("%s and %s: the same digest", args, other)
		}
		seen[d("p", args)] = args
	}
	if d("p", `{"a":1}`) == d("q", `{"a":1}`) || d("p", "absent") == d("p\x00", "absent") {
		t.Error("another process, the same digest")
	}
	if x := opDigest(&protocol.Execute{Process: "p", Args: []byte(`{"a":1}`)}); x.Known() {
		t.Error("a digest without an op id")
	}
}
