package protocol

import "fmt"

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Is reports whether target is an *Error with the same code. A nil
// *Error (a reply's Err when there is none, held in an error interface)
// matches nothing.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && e != nil && t != nil && t.Code == e.Code
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// The codes theus itself uses. A process may return codes of its own
// (bank.transfer returns "insufficient_funds"); codes are lower snake case.
const (
	CodeUnknownProcess    = "unknown_process"    // no worker registers that name
	CodeBadArgs           = "bad_args"           // args do not decode into the process's type
	CodeContractViolation = "contract_violation" // a read or write outside the contract; Path names it
	CodeRetryLimit        = "retry_limit"        // every allowed attempt conflicted
	CodeWorkerCrashed     = "worker_crashed"     // the worker died on every allowed dispatch
	CodeTimeout           = "timeout"            // the invocation ran past its deadline
	CodeCanceled          = "canceled"           // the caller went away
	CodeShuttingDown      = "shutting_down"      // the supervisor is draining
	CodeBadRequest        = "bad_request"        // a malformed request (bad path, bad op id, ...)
	CodeBadFrame          = "bad_frame"          // bytes that are not a valid frame or message
	CodeProtocol          = "protocol_mismatch"  // a handshake with the wrong magic or version
	CodeProcessFailed     = "process_failed"     // the process returned an error without a code
	CodeInternal          = "internal"           // a bug in theus
	CodeArenaFull         = "arena_full"         // the worker's HEAVY slab has no block that large free
	CodeBadTensor         = "bad_tensor"         // a HEAVY value that is not a valid tensor of the caller's
	CodeNotDurable        = "not_durable"        // the supervisor can no longer write commits to disk
	CodeOpIDConflict      = "op_id_conflict"     // the op id was committed by another call (another process or other args)
	CodeNotFound          = "not_found"          // a Get of a path with nothing at or under it; Path names it
	CodeTooManyClients    = "too_many_clients"   // the supervisor serves --max-clients connections already
	CodeSchemaViolation   = "schema_violation"   // a value the commit would write fails the --schema file; Path names it
	CodeAuditAbort        = "audit_abort"        // an audit rule of level A refused the call; nothing committed
	CodeAuditBlock        = "audit_block"        // an audit rule of level B passed its threshold_max; nothing committed
	CodeAuditStop         = "audit_stop"         // an audit rule of level S stopped the process until theusctl audit resume
	CodeRemoteTensor      = "remote_tensor"      // a HEAVY tensor in another supervisor's arena (--store etcd); Path names it
	CodeFenced            = "fenced"             // a workflow run's or machine's commit refused: another supervisor owns it now (--store etcd)
)

// Sentinels for errors.Is.
var (
	ErrUnknownProcess    = &Error{Code: CodeUnknownProcess}
	ErrBadArgs           = &Error{Code: CodeBadArgs}
	ErrContractViolation = &Error{Code: CodeContractViolation}
	ErrRetryLimit        = &Error{Code: CodeRetryLimit}
	ErrWorkerCrashed     = &Error{Code: CodeWorkerCrashed}
	ErrTimeout           = &Error{Code: CodeTimeout}
	ErrCanceled          = &Error{Code: CodeCanceled}
	ErrShuttingDown      = &Error{Code: CodeShuttingDown}
	ErrBadRequest        = &Error{Code: CodeBadRequest}
	ErrBadFrame          = &Error{Code: CodeBadFrame}
	ErrProtocol          = &Error{Code: CodeProtocol}
	ErrProcessFailed     = &Error{Code: CodeProcessFailed}
	ErrInternal          = &Error{Code: CodeInternal}
	ErrArenaFull         = &Error{Code: CodeArenaFull}
	ErrBadTensor         = &Error{Code: CodeBadTensor}
	ErrNotDurable        = &Error{Code: CodeNotDurable}
	ErrOpIDConflict      = &Error{Code: CodeOpIDConflict}
	ErrNotFound          = &Error{Code: CodeNotFound}
	ErrTooManyClients    = &Error{Code: CodeTooManyClients}
	ErrSchemaViolation   = &Error{Code: CodeSchemaViolation}
	ErrAuditAbort        = &Error{Code: CodeAuditAbort}
	ErrAuditBlock        = &Error{Code: CodeAuditBlock}
	ErrAuditStop         = &Error{Code: CodeAuditStop}
	ErrRemoteTensor      = &Error{Code: CodeRemoteTensor}
	ErrFenced            = &Error{Code: CodeFenced}
)
