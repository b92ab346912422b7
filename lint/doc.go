// Package lint owns the POP analyzers: go/analysis passes that check the
// Go source of theus processes (functions registered with
// worker.Process) against the rules of process-oriented programming and
// against their own contract literals, before they ever run. It never
// runs a process or loads a plugin; cmd/theus-lint is its driver.
//
// # Basics
//
// Processes analyzes nothing by itself: it finds each worker.Process
// call of a package, reads its contract literal, and collects the
// handler with every function of the same package the handler reaches
// (to a bounded depth). The rule analyzers (Analyzers, one per POP rule)
// require it and report only inside those functions. Every message
// starts with the rule's id, for example "POP-E01 fmt.Println writes to
// stdout ...", and its Category is the id.
//
// A finding that is deliberate is silenced by a directive on its line or
// the line above, which must give a reason:
//
//	//theus-lint:ignore POP-C01 this process breaks its contract on purpose
//
// # Caveats
//
// Paths are checked only when they are constants (a literal or a
// constant expression such as Prefix + ".x"); a path built at run time
// is never guessed at, and a process that reads one is never told that a
// declared input goes unread. Data flow (POP-E05, POP-E08) is followed
// within one function, in source order, plus one summary per called
// function of the same package for read views. docs/GOVERNANCE.md lists
// the limits of each rule.
package lint
