// Package demo owns the processes of the default worker (noop, counter.add,
// counters.add, bank.open, bank.transfer, order.place, which emits an
// outbox message, bench.spin, tensor.*, and the fault.* processes that
// tests and load scripts use to break things on purpose, served only when the supervisor asks: Served, EnvFaults) and
// the short workload that theus-supervisor --demo runs against them. Their
// names and behavior are stable: scripts and tests depend on them.
//
// It never reaches into the supervisor: the processes use the worker SDK
// (and shm, for the tensor layout), and the workload only the client
// package.
package demo
