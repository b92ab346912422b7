package protocol

import (
	"errors"
	"io"
	"testing"
)

func TestErrorText(t *testing.T) {
	if got := (&Error{Code: CodeTimeout}).Error(); got != "timeout" {
		t.Errorf("no message: %q, want the code alone", got)
	}
	if got := Errorf(CodeBadArgs, "field %s: %d", "by", 2).Error(); got != "bad_args: field by: 2" {
		t.Errorf("Errorf: %q", got)
	}
	if errors.Is(ErrTimeout, io.EOF) {
		t.Error("an *Error matched an error of another type")
	}
	if !errors.Is(Errorf(CodeTimeout, "after %ds", 1), ErrTimeout) {
		t.Error("an *Error did not match its code's sentinel")
	}
}
