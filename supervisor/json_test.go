package supervisor

import (
	"strings"
	"testing"
)

func TestWhyNotJSON(t *testing.T) {
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	for in, want := range map[string]string{
		deep:           "nested deeper than 10000 levels",
		`{"a":`:        "unexpected end of JSON input",
		`{"a":1,}`:     "at byte 8",
		"\xff":         "invalid character",
		`{"a":1} {}`:   "after top-level value",
		`[1, 2, oops]`: "at byte 8",
	} {
		if got := whyNotJSON([]byte(in)).Error(); !strings.Contains(got, want) {
			t.Errorf("whyNotJSON(%.20q) = %q, want %q in it", in, got, want)
		}
	}
}
