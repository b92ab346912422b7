package flux

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestTree(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		entries []Entry
		want    string // the tree as JSON
		wantErr string
	}{
		{name: "the example", prefix: "domain",
			entries: []Entry{{"domain.a.b", []byte("1")}, {"domain.c", []byte(`"x"`)}},
			want:    `{"a":{"b":1},"c":"x"}`},
		{name: "no entries", prefix: "domain", want: `{}`},
		{name: "object value merges with its children, a child wins", prefix: "domain",
			entries: []Entry{{"domain.a", []byte(`{"x":1,"b":{"old":true}}`)}, {"domain.a.b", []byte("2")}, {"domain.a.c.d", []byte("3")}},
			want:    `{"a":{"b":2,"c":{"d":3},"x":1}}`},
		{name: "non-object value is replaced by its children", prefix: "domain",
			entries: []Entry{{"domain.a", []byte(`5`)}, {"domain.a.b", []byte("2")}},
			want:    `{"a":{"b":2}}`},
		{name: "null and list values are replaced too", prefix: "domain",
			entries: []Entry{{"domain.n", []byte(`null`)}, {"domain.n.x", []byte("1")}, {"domain.l", []byte(`[1]`)}, {"domain.l.y", []byte("2")}},
			want:    `{"l":{"y":2},"n":{"x":1}}`},
		{name: "the prefix itself is the base object", prefix: "domain",
			entries: []Entry{{"domain", []byte(`{"k":1,"a":0}`)}, {"domain.a", []byte("2")}},
			want:    `{"a":2,"k":1}`},
		{name: "a non-object at the prefix is replaced", prefix: "domain",
			entries: []Entry{{"domain", []byte(`7`)}, {"domain.a", []byte("2")}},
			want:    `{"a":2}`},
		{name: "empty prefix takes every path", prefix: "",
			entries: []Entry{{"domain.a", []byte("1")}, {"global.b", []byte("2")}},
			want:    `{"domain":{"a":1},"global":{"b":2}}`},
		{name: "a sibling with a longer name is not a child", prefix: "domain",
			entries: []Entry{{"domain.a", []byte("1")}, {"domain.ab", []byte("2")}, {"domain.a-b", []byte("3")}},
			want:    `{"a":1,"a-b":3,"ab":2}`},
		{name: "path outside the prefix", prefix: "domain",
			entries: []Entry{{"domainx.a", []byte("1")}}, wantErr: `path "domainx.a" is not under "domain"`},
		{name: "path given twice", prefix: "domain",
			entries: []Entry{{"domain.a", []byte("1")}, {"domain.a", []byte("2")}}, wantErr: `path "domain.a" given twice`},
		{name: "value not JSON", prefix: "domain",
			entries: []Entry{{"domain.a", []byte("{")}}, wantErr: `value of "domain.a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The result must not depend on the order of entries: try them
			// forward and backward.
			for _, entries := range [][]Entry{tt.entries, reversed(tt.entries)} {
				got, err := Tree(tt.prefix, entries)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("Tree = %v, %v; want error %q", got, err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(got)
				if string(b) != tt.want {
					t.Errorf("Tree = %s, want %s", b, tt.want)
				}
			}
		})
	}
}

func reversed(es []Entry) []Entry {
	out := slices.Clone(es)
	slices.Reverse(out)
	return out
}

// A tree from Tree is what conditions read.
func TestTreeFeedsConditions(t *testing.T) {
	dom, err := Tree("domain", []Entry{
		{"domain.sensor_data.temp", []byte("26")},
		{"domain.action_log", []byte(`["a"]`)},
		{"domain.mode", []byte(`"active"`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Domain: func() (map[string]any, error) { return dom, nil }}
	for _, src := range []string{
		"domain['sensor_data']['temp'] >= 25",
		"len(domain.get('action_log', [])) < 5",
		"domain['mode'] == 'active'",
	} {
		if ok, err := mustExpr(t, src).Truth(env); err != nil || !ok {
			t.Errorf("%s = %v, %v; want true", src, ok, err)
		}
	}
}
