package cas

import "time"

// Origin describes the invocation behind a commit, for whoever watches
// commits (Config.Committed): the supervisor's commit log shows it. The
// Runner fills it; the store passes it on and never reads it.
type Origin struct {
	Process   string    // the contract's name; "" for a commit made outside a Runner
	Attempts  int       // runs of the invocation, the committing one included
	Conflicts int       // attempts that lost to another commit
	VIP       bool      // committed under the invocation's VIP ticket
	Start     time.Time // when the invocation began (Runner.Execute)
}
