package protocol

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestSpecVersion: every place the prose of docs/PROTOCOL.md states the
// protocol version says Version. A worker written from the document
// alone claims that version in its Hello, and any other is refused with
// protocol_mismatch; the example blocks (TestSpecExamples) carry the
// number only in hex.
func TestSpecVersion(t *testing.T) {
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(Version)
	for _, c := range []struct {
		where string
		re    *regexp.Regexp
	}{
		{"the opening statement", regexp.MustCompile(`This is protocol version \*\*(\d+)\*\*`)},
		{"Hello.Protocol's limits", regexp.MustCompile("\\| 1 \\| `Protocol` \\| `uint16` \\| `(\\d+)`, else Refuse")},
		{"Welcome.Protocol's limits", regexp.MustCompile("\\| 0 \\| `Protocol` \\| `uint16` \\| `(\\d+)` \\|")},
		{"the handshake diagram", regexp.MustCompile(`magic, protocol (\d+), processes`)},
		{"the handshake's design note", regexp.MustCompile(`The protocol version is now (\d+)`)},
	} {
		m := c.re.FindAllSubmatch(b, -1)
		if len(m) == 0 {
			t.Errorf("%s: %s: no match for %s", specPath, c.where, c.re)
		}
		for _, g := range m {
			if string(g[1]) != want {
				t.Errorf("%s: %s says protocol version %s; protocol.Version is %s", specPath, c.where, g[1], want)
			}
		}
	}
}
