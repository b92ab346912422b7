package flux

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/theus-run/theus/cas"
)

// Host is what the Engine needs from the supervisor that embeds it: to
// run a process step as one transaction, to commit the engine's own
// records, to read the committed state and to hear signals. Every
// method is safe for concurrent use.
type Host interface {
	// Exec runs call.Process with call.Args until its delta commits or it
	// fails, commits call.System(attempt) in the same transaction as the
	// delta, and returns once the commit is durable. call.OpID makes it
	// idempotent. A failure is reported as a *Failure when it has a code.
	Exec(ctx context.Context, call Call) (Done, error)
	// Commit commits sys alone and returns its version once durable.
	Commit(ctx context.Context, sys cas.Delta) (uint64, error)
	// Snapshot is the newest committed state; the caller releases it.
	Snapshot() *cas.Snapshot
	// Signals subscribes to every signal committed from now on, in
	// version order, once durable; stop ends the subscription.
	Signals() (items <-chan Signal, stop func())
	// Known reports whether a process exists.
	Known(process string) bool
}

// Call is one process step.
type Call struct {
	Process string
	Args    []byte // a JSON object
	OpID    string
	// System returns the writes to commit with the attempt's delta (the
	// run's record), given the attempt's number (from 1).
	System func(attempt int) cas.Delta
}

// Done is a committed step.
type Done struct {
	Version  uint64
	Attempts int
	Result   json.RawMessage
}

// Signal is a committed signal, or a note that the subscription missed
// Lagged signals.
type Signal struct {
	Version uint64
	Path    string
	Value   json.RawMessage
	Lagged  uint64
}

// Failure is why a step, a run or a request failed: a stable code (the
// wire error codes, and the flux_* codes of this package) and a message.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

func (f *Failure) Error() string { return f.Code + ": " + f.Message }

func failf(code, format string, args ...any) *Failure {
	return &Failure{Code: code, Message: fmt.Sprintf(format, args...)}
}

// The codes of this package's own failures.
const (
	CodeMaxOps     = "flux_max_ops"   // the run visited more steps than its max_ops
	CodeCondition  = "flux_condition" // a condition or argument expression failed
	CodeTimeout    = "flux_timeout"   // the run's deadline, or a wait's timeout, passed
	CodeChanged    = "flux_changed"   // the workflow a run resumes was changed or removed
	CodeCancelled  = "flux_cancelled" // the run was cancelled
	CodeNotFound   = "not_found"      // no such run, machine or workflow
	CodeBadRequest = "bad_request"
	CodeExists     = "flux_exists" // a run or machine id in use by another definition
)
