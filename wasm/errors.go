package wasm

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
)

// wireError turns a call's error into its wire form, as the supervisor
// does: a client in a page sees the codes a theusctl user sees.
func wireError(err error) *protocol.Error {
	var pe *protocol.Error
	var v *contract.Violation
	var oc *cas.OpIDConflictError
	switch {
	case errors.As(err, &pe):
		return &protocol.Error{Code: pe.Code, Message: pe.Message, Path: pe.Path}
	case errors.As(err, &v):
		return &protocol.Error{Code: protocol.CodeContractViolation, Message: v.Error(), Path: string(v.Path)}
	case errors.As(err, &oc):
		return &protocol.Error{Code: protocol.CodeOpIDConflict, Message: oc.Error()}
	case errors.Is(err, cas.ErrRetryLimit):
		return &protocol.Error{Code: protocol.CodeRetryLimit, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &protocol.Error{Code: protocol.CodeTimeout, Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return &protocol.Error{Code: protocol.CodeCanceled, Message: err.Error()}
	case errors.Is(err, cas.ErrInvalidDelta):
		return &protocol.Error{Code: protocol.CodeProcessFailed, Message: err.Error()}
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: err.Error()}
}

// opDigest binds an op id to its call as the supervisor does
// (cas.CallDigest). Zero without an op id.
func opDigest(process string, args json.RawMessage, opID string) cas.OpDigest {
	if opID == "" {
		return cas.OpDigest{}
	}
	return cas.CallDigest(process, args)
}

// isCode reports whether c has the form of a wire code: lower snake case,
// at most 64 bytes ("insufficient_funds"). A JavaScript error's code
// property is taken as the call's code only then (Node's ERR_* codes and
// DOMException's numbers are not).
func isCode(c string) bool {
	if c == "" || len(c) > 64 || c[0] < 'a' || c[0] > 'z' {
		return false
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_') {
			return false
		}
	}
	return true
}
