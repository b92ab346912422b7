package flux

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// Host is what the Engine needs from the supervisor that embeds it: to
// run a process step as one transaction, to commit the engine's own
// records, to read the committed state and to hear signals. Every
// method is safe for concurrent use. A Host whose Context other engines
// share implements Owners too.
type Host interface {
	// Exec runs call.Process with call.Args until its delta commits or it
	// fails, commits call.System(attempt) in the same transaction as the
	// delta, and returns once the commit is durable. call.OpID makes it
	// idempotent. A failure is reported as a *Failure when it has a code
	// (CodeFenced when call.Fence did not hold).
	Exec(ctx context.Context, call Call) (Done, error)
	// Commit commits sys alone and returns its version once durable.
	// fence, when not nil, is a Claim's: the commit applies only while it
	// holds (an error that errors.Is cas.ErrFenced, or a CodeFenced
	// *Failure, when it does not).
	Commit(ctx context.Context, sys cas.Delta, fence cas.Fence) (uint64, error)
	// Snapshot is the newest committed state, reading at least every
	// value at or under the paths given; the caller releases it.
	Snapshot(ctx context.Context, under ...contract.Path) (*cas.Snapshot, error)
	// Signals subscribes to every signal committed from now on, in
	// version order, once durable; stop ends the subscription.
	Signals() (items <-chan Signal, stop func())
	// Known reports whether a process exists.
	Known(process string) bool
}

// Owners is a Host whose Context several engines share (several
// supervisors on one etcd cluster). Each live unit (a run, or a machine
// with its entry runs) is run by one engine at a time, its owner, which
// fences every commit it makes for the unit with its Claim; an engine
// takes over the units whose owner went away. Without Owners, an engine
// owns every unit of its Context.
type Owners interface {
	// Claim makes this engine unit's owner if it has none; ErrOwned if
	// another engine owns it.
	Claim(ctx context.Context, unit string) (*Claim, error)
	// Take makes this engine unit's owner even if another engine is:
	// that one's commits for it are fenced from then on.
	Take(ctx context.Context, unit string) (*Claim, error)
	// Release ends an ownership that no commit ended (a unit that ended
	// without its Claim's End, or one this engine stops running).
	Release(c *Claim)
	// Watch reports changes of ownership made by other engines, and a
	// Rescan when some may have been missed; stop ends it.
	Watch() (changes <-chan OwnerChange, stop func())
}

// Claim is an engine's ownership of a unit.
type Claim struct {
	Unit string
	// Fence goes with each commit made for the unit; End with the one
	// that ends it (the ownership ends with it). nil without Owners.
	Fence, End cas.Fence
	// Lost is closed when the ownership may have ended behind the
	// engine's back (its lease was lost); nil for never.
	Lost <-chan struct{}
}

// OwnerChange is a change of a unit's owner: another engine took it
// (Gone false), or it has none now (Gone: its owner ended it or died).
// Rescan asks the engine to look at every unit.
type OwnerChange struct {
	Unit   string
	Gone   bool
	Rescan bool
}

// ErrOwned is Owners.Claim's answer when another engine owns the unit.
var ErrOwned = errors.New("flux: another engine owns it")

// Call is one process step.
type Call struct {
	Process string
	Args    []byte // a JSON object
	OpID    string
	// System returns the writes to commit with the attempt's delta (the
	// run's record), given the attempt's number (from 1).
	System func(attempt int) cas.Delta
	// Fence is the run's Claim's: the step commits only while it holds.
	Fence cas.Fence
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
	// CodeFenced is a commit for a run or machine that this engine owns
	// no longer (protocol.CodeFenced on the wire).
	CodeFenced = "fenced"
)

// fenced reports whether err is a commit refused because the engine no
// longer owns what it committed for.
func fenced(err error) bool {
	var f *Failure
	return errors.Is(err, cas.ErrFenced) || errors.As(err, &f) && f.Code == CodeFenced
}
