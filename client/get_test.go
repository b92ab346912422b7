package client

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/theus-run/theus/protocol"
)

func TestValueJSON(t *testing.T) {
	v := &Value{Path: "domain", Entries: []protocol.Entry{
		{Path: "domain", Value: []byte(`0`)},
		{Path: "domain.a", Value: []byte(`1`)},
		{Path: "domain.a.b", Value: []byte(`2`)},
		{Path: "domain.c.d", Value: []byte(`"x"`)},
	}}
	got, err := v.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"_value":0,"a":{"_value":1,"b":2},"c":{"d":"x"}}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// FuzzValueJSON: entries from the supervisor, however odd, give valid JSON
// or an error, never a panic.
func FuzzValueJSON(f *testing.F) {
	f.Add("domain", "domain.a,domain.a.b,domain", []byte(`1`))
	f.Add("d", "d.x.y.z,d.x", []byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, path, paths string, value []byte) {
		if !json.Valid(value) {
			return // the supervisor stores JSON only
		}
		v := &Value{Path: path}
		for _, p := range strings.Split(paths, ",") {
			v.Entries = append(v.Entries, protocol.Entry{Path: p, Value: value})
		}
		out, err := v.JSON()
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
	})
}
