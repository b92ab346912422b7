package etcdstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/theus-run/theus/protocol"
)

// ErrUnavailable matches every error that comes from etcd not answering
// (UnavailableError, UncertainError).
var ErrUnavailable = errors.New("etcdstore: etcd unavailable")

// LimitError is a delta larger than etcd takes in one Txn. Nothing was
// sent. It is a bad_request on the wire (errors.As to *protocol.Error).
type LimitError struct {
	What     string // "operations" or "bytes"
	Got, Max int    // zero when the cluster refused it (Err)
	Err      error  // the cluster's refusal, when it came from etcd
}

func (e *LimitError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("etcdstore: the commit needs more %s than etcd takes in one Txn: split the delta: %v", e.What, e.Err)
	}
	return fmt.Sprintf("etcdstore: the commit needs %d %s in one etcd Txn, over the cluster's %d (--max-txn-ops, --max-request-bytes): split the delta", e.Got, e.What, e.Max)
}

// As makes errors.As(err, **protocol.Error) give a bad_request.
func (e *LimitError) As(target any) bool {
	if pe, ok := target.(**protocol.Error); ok {
		*pe = &protocol.Error{Code: protocol.CodeBadRequest, Message: e.Error()}
		return true
	}
	return false
}

// UnavailableError is a read that etcd did not answer: nothing changed.
type UnavailableError struct {
	Op  string
	Err error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("etcdstore: %s: etcd unavailable: %v", e.Op, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// As makes errors.As(err, **protocol.Error) give a not_durable: the
// store cannot be reached, and nothing changed. A read that its caller
// canceled is not one (the caller's own cancel is the cause).
func (e *UnavailableError) As(target any) bool {
	pe, ok := target.(**protocol.Error)
	if !ok || errors.Is(e.Err, context.Canceled) {
		return false
	}
	*pe = &protocol.Error{Code: protocol.CodeNotDurable, Message: e.Error() + " (nothing changed)"}
	return true
}

// UncertainError is a commit whose Txn got no answer: it may or may not
// have applied. It is never reported as a success; retrying with the
// same op id applies it at most once.
type UncertainError struct{ Err error }

func (e *UncertainError) Error() string {
	return fmt.Sprintf("etcdstore: commit outcome unknown (etcd did not answer; retry with the same op id): %v", e.Err)
}

func (e *UncertainError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UncertainError) Is(target error) bool { return target == ErrUnavailable }

// As makes errors.As(err, **protocol.Error) give a not_durable: the
// commit may have applied, and it is not acknowledged.
func (e *UncertainError) As(target any) bool {
	if pe, ok := target.(**protocol.Error); ok {
		*pe = &protocol.Error{Code: protocol.CodeNotDurable, Message: e.Error()}
		return true
	}
	return false
}
