// Package wasm owns theus inside one WebAssembly instance: a Runtime is a
// Context (cas.Store, vip.Arbiter and cas.Runner, as in the supervisor),
// the processes registered in it with their contracts, the signals its
// commits publish and a Flux engine whose steps run those processes. It
// never opens a socket or a file, never starts a worker and has no HEAVY
// zone. The js && wasm files (js_*.go) turn JavaScript functions into
// Processes and install the API on a JavaScript object (Install);
// cmd/theus-wasm is the program that does so, and nothing else here
// touches syscall/js.
//
// # Basics
//
// A Process runs one attempt of a call. It reads the Context through its
// *Ctx, which holds the call's snapshot and lets it read only the paths
// its contract declares, and writes through Ctx.Set, Ctx.Delete and
// Ctx.Append, which build the delta the Runtime commits. Its return value
// is the call's result. Exec runs a Process until its delta commits, with
// the same checks as the supervisor: the contract bound from the call's
// args (templated paths), every write and read checked again before the
// commit, the read set the Ctx saw, conflicts retried on a fresh snapshot
// with backoff and VIP tickets, op ids idempotent. Errors are
// *protocol.Error values with the wire codes.
//
// # Concurrency
//
// In a browser every goroutine runs on the page's thread: calls run
// concurrently when their processes wait (a JavaScript process across an
// await), and a commit that raced another conflicts and runs again as on
// the server. A Runtime is safe for concurrent use; its goroutines (the
// signal hub's, the Flux runs') are stopped by Close.
//
// # Caveats
//
// Nothing is durable: a Runtime's Context lives in memory, and Export and
// a Config.Restore carry it across instances. Values are JSON; a typed
// array is stored by value, as a JSON array of numbers.
package wasm
