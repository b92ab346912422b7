package flux

import "testing"

func TestPySyntax(t *testing.T) {
	tests := []struct{ src, want string }{
		{"a is None", "a == None"},
		{"a is not None", "a !=     None"},
		{"a is  not None", "a !=      None"},
		{"a is notable", "a == notable"},
		{"'is' + \"is not\" + `is`", "'is' + \"is not\" + `is`"},
		{"'it\\'s is' is x", "'it\\'s is' == x"},
		{"x.is is y", "x.is == y"},
		{"island or this or is_x", "island or this or is_x"},
		{"is", "=="},
		{"'unterminated is", "'unterminated is"},
	}
	for _, tt := range tests {
		if got := pySyntax(tt.src); got != tt.want || len(got) != len(tt.src) {
			t.Errorf("pySyntax(%q) = %q, want %q (same length)", tt.src, got, tt.want)
		}
	}
}
