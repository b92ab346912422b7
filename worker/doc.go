// Package worker is the SDK for theus worker plugins: Go programs that the
// supervisor launches and that run processes for it.
//
// A plugin declares its processes with Process (a name, a Contract and a
// typed function) and hands them to Main. A process reads its inputs
// through its *Ctx, which holds only the paths its contract declares, and
// writes through Ctx.Set, Ctx.Delete and Ctx.Append, which build the delta
// the supervisor commits; it has no other way to reach shared state. An
// EFFECT process may also emit outbox messages (Ctx.Emit), committed with
// that delta. Its return value goes back to the caller as JSON.
//
//	func main() {
//		worker.Main(worker.Process("counter.add", worker.Contract{
//			Inputs: []string{"domain.counter"}, Outputs: []string{"domain.counter"},
//		}, add))
//	}
//
// The SDK owns the worker's end of the socketpair and the handshake. It
// never writes to stdout (the launch channel) and logs JSON through
// zerolog to stderr, which the supervisor collects into its own log.
package worker
