package flux

import "strings"

// pySyntax rewrites Python operators that expr does not parse into
// operators of the same length, so that columns in messages stay true:
// `is not` becomes `!=` and `is` becomes `==` (outside string literals
// and after no dot). Conditions use them with None, True and False, where
// identity and equality agree.
func pySyntax(src string) string {
	b := []byte(src)
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\'' || c == '"' || c == '`':
			i = skipString(b, i)
		case c == 'i' && word(b, i, "is") && !afterDot(b, i):
			end := i + 2
			j := end
			for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
				j++
			}
			op := "=="
			if j > end && word(b, j, "not") {
				end, op = j+3, "!="
			}
			copy(b[i:end], op+strings.Repeat(" ", end-i-2))
			i = end - 1
		}
	}
	return string(b)
}

// skipString returns the index of the quote closing the string literal
// opened at b[i] (or the last index when it is not closed).
func skipString(b []byte, i int) int {
	q := b[i]
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			return j
		}
	}
	return len(b) - 1
}

func isIdent(c byte) bool {
	return c == '_' || c == '$' || c == '#' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// word reports whether b holds the whole word w at i.
func word(b []byte, i int, w string) bool {
	if !strings.HasPrefix(string(b[i:]), w) {
		return false
	}
	if i > 0 && isIdent(b[i-1]) {
		return false
	}
	end := i + len(w)
	return end == len(b) || !isIdent(b[end])
}

// afterDot reports whether the word at i is a member name (x.is).
func afterDot(b []byte, i int) bool {
	for j := i - 1; j >= 0; j-- {
		switch b[j] {
		case ' ', '\t', '\n', '\r':
			continue
		case '.':
			return true
		}
		return false
	}
	return false
}
