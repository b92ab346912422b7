package main

import (
	"context"
	"errors"
)

// A target is what the bench drives: theus, or a peer that a user would
// pick instead. Every method is safe for concurrent use.
type target interface {
	// supports reports whether the target can run workload w.
	supports(w string) bool
	// version names the server and its version, for the results.
	version(ctx context.Context) string
	// setup prepares what w needs (accounts, tensors) before the clock
	// starts; it returns nothing to measure.
	setup(ctx context.Context, w *workload) error
	// do runs one request of caller (0 ≤ caller < clients×depth).
	do(ctx context.Context, caller int, r request) (outcome, error)
	// read returns the state the end-of-run check needs.
	read(ctx context.Context, w *workload) (state, error)
	close() error
}

// request is one operation, in the terms every target understands.
type request struct {
	op     string // noop, add, transfer, tensor.fill, tensor.peek, tensor.sum, tensor.scale, spin
	key    string // add: the counter ("" is the hot one); tensor: the tensor
	dst    string // tensor.scale: the output tensor
	from   string // transfer
	to     string
	amount int64
	n      int64 // tensor.fill: F32 elements
}

// outcome is what a request cost beyond its latency.
type outcome struct {
	retries int  // runs or transactions that lost and were retried
	vip     bool // theus: committed under a VIP ticket
}

// state is what a run's check reads at its start and end.
type state struct {
	counters map[string]int64 // add keys ("" the hot counter) -> value
	balances map[string]int64 // accounts -> balance
}

// errInsufficient is a transfer refused for lack of funds: expected, not
// a failure of the target.
var errInsufficient = errors.New("insufficient funds")
