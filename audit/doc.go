// Package audit owns audit recipes: a YAML file of rules on the args a
// process is called with (inputs) and on the values its commit would
// write (outputs), each with a level saying what a violation does (I, S,
// A, B, C), and the counters, stopped processes and bounded log of
// violations those levels keep (Tracker).
//
// It never runs a process and never touches the store: the supervisor
// checks a call's args before dispatch and its final delta before commit
// with a Recipe, asks a Tracker what the violations mean, and persists
// the Tracker's state (Export) itself. The format, the rule kinds and the
// levels are described in docs/GOVERNANCE.md.
package audit
