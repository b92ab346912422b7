// Package flux owns the Flux language and its runs: workflow files (steps: process, if, while,
// run, wait, on_fail) and state-machine files (states:), their validation at load with
// file:line:col, their compilation into a flat program, the conditions and argument expressions
// evaluated against a snapshot, and the Engine that runs programs and machines, durably. It never
// dispatches to a worker, never touches the store and never talks to another process: every step,
// record and snapshot goes through the Host that the supervisor gives the Engine.
// With a Host that is also Owners (several supervisors on one etcd Context), each run or machine
// has one owning engine at a time, which fences its commits with its Claim; the others take over
// the units whose owner went away (owners.go).
//
// # Files
//
// A workflow file has a root steps: list and optional metadata name,
// description and version. A machine file has a root states: mapping, a
// required initial: state and the same metadata. A file with both steps:
// and states:, or neither, and any other root key, is refused. Load
// checks everything it can (keys, block shapes, process names, conditions,
// signal paths, state names) and returns every problem at once, each with
// its file:line:col, in a *LoadError. YAML aliases, tags and merge keys are
// refused (an alias can expand exponentially); anchors are allowed.
//
// Steps:
//
//	steps:
//	- name                         # run the process `name`
//	- process: name                # the same, with optional args: and on_fail:
//	  args: {n: 1, who: "${ args.user }"}
//	  on_fail: [steps...]
//	- flux: if                     # condition:, then:, optional else:
//	- flux: while                  # condition:, do:
//	- flux: run                    # steps: (a nested block)
//	- flux: wait                   # signal: PATH, optional timeout: 30s or 30
//	- flux: continue               # only as the last step of an on_fail block
//
// Every block (steps, then, else, do, on_fail, entry) must be a non-empty
// list. An args: value is literal YAML, converted to JSON, except a string
// of the exact form "${ EXPR }", which is an expression evaluated when the
// step runs; its result keeps its type. A wait's signal: is a path in the
// SIGNAL zone (a sig_* or cmd_* segment) or above one ("domain" waits for
// any signal under domain). A timeout is a Go duration or a number of
// seconds, greater than zero; without one the wait has no timeout.
//
// A machine's states: maps each state name to an optional entry: block and
// an optional on: mapping from event to next state. An event is "done" or
// "failed" (the entry block ended, or failed) or a SIGNAL-zone path.
//
// # on_fail
//
// When a process step fails, the failed step committed nothing and its
// on_fail block runs. If the block ends with `- flux: continue`, the run
// goes on with the step after the failed one; otherwise, once the block
// has run, the run fails with the failed step's error. A failure inside
// the on_fail block itself fails the run with that failure's error.
//
// # Programs
//
// A steps block compiles into a flat Program. The run starts at pc 0 and
// ends when pc == len(Instrs). Each step compiles to:
//
//	process:          Process(OnFail=-1)
//	process+on_fail:  p: Process(OnFail=h); Jump(after); h: block...;
//	                  Jump(after) if the block ended with continue, else Fail(Target=p); after:
//	if:               Branch(Cond, Target=else_or_end); then...; [Jump(end); else...]; end:
//	while:            L: Branch(Cond, Target=end); body...; Jump(L); end:
//	run:              Enter; steps...
//	wait:             Wait(Signal, Timeout)
//
// Process, Branch, Wait and Enter count one op each (so each iteration of
// a while counts, even with an empty-looking body); Jump counts nothing.
//
// Limits, refused at load: a file over MaxFileSize, YAML nested deeper
// than 256 levels (checked on the tokens, before go-yaml's parser, whose
// time grows with depth times size), blocks nested deeper than MaxDepth,
// a program of more than MaxInstrs instructions, an expression over
// MaxExprLen bytes, an args value nested deeper than 64 levels.
//
// # Conditions and expressions
//
// Conditions and ${ } arguments are github.com/expr-lang/expr programs,
// compiled once at load, and rewritten so that conditions written for the
// original Python framework run unchanged. Names: domain and global (the
// committed state under those layers, nested maps built by Tree), args
// (the run's args), signal (the signals the run has seen since its
// previous step) and run (run.id, run.ops). These work as in Python:
// and, or, not (which return booleans here), is and is not (which mean ==
// and !=), in and not in, True, False, None, x['k'] and x.k, negative list
// indices, d.get(k[, default]), d.keys(), d.values(), d.items(),
// s.lower(), s.upper(), s.strip(), s.startswith(p), s.endswith(p), and
// the builtins len, int, float, str, bool, abs, min, max, sum, round, any,
// all, sorted and range. Numbers from JSON are float64: == and != compare
// numbers by value across int and float, and str() of an integral float
// prints no ".0". Not supported: Python's `a if c else b` (write
// c ? a : b), comprehensions and lambdas.
//
// Missing keys: a missing key is None, and so is any member or index of
// None (domain.a.b is None when a is missing); d.get(k) is None and
// d.get(k, x) is x when k is missing, or when d is None. None is false.
// <, <=, > and >= with None on either side are false; == and != compare
// normally (None == None); len(None) is 0; `x in None` is false. Anything
// else on None or between mismatched types (arithmetic, ordering a string
// and a number, indexing a string with a string, an index out of range) is
// an *EvalError naming the expression and its file:line:col; evaluation
// never panics.
//
// # Sandbox
//
// A condition can call only the functions listed above (and use expr's
// operators such as ?:, ??, slices, contains and matches): all of expr's
// builtins are disabled (no now, date, repeat, toJSON or any other),
// and predicates (map, filter, all with a {...} closure, #), let, $env and
// the range operator .. are refused at load, so an expression has no loop
// of its own. Its running time is therefore bounded by its size (at most
// MaxExprLen bytes and 1024 AST nodes, checked at compile) times the size
// of the values it touches: each function is linear (sorted: n log n) in
// its arguments. Memory is bounded by expr's memory budget for what the VM
// builds and, for what the functions build, by a limit on each result: a
// string from + or str() of at most 1 MiB, a list from + or range() of at
// most 10000 items; over a limit is an *EvalError.
package flux
