package contract

import (
	"strings"
	"testing"
)

// A path with a character outside the segment alphabet names that
// character, whole, in the error, not the first byte of its encoding.
func TestPathErrorNamesTheCharacter(t *testing.T) {
	for in, want := range map[string]string{
		"domain.café":   `byte 10 is 'é'`,
		"domain.日本":     `byte 7 is '日'`,
		"domain.a b":    `byte 8 is ' '`,
		"domain.\xffx":  `byte 7 is 0xff, not UTF-8`,
		"domain.\xc3":   `byte 7 is 0xc3, not UTF-8`,
		"domain.x\x00y": `byte 8 is '\x00'`,
	} {
		_, err := Parse(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q in it", in, err, want)
		}
	}
}
