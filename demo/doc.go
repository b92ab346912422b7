// Package demo owns the processes of the default worker (noop, counter.add,
// bank.open, bank.transfer and the fault.* processes that tests and load
// scripts use to break things on purpose) and the short workload that
// theus-supervisor --demo runs against them. Their names and behavior are
// stable: scripts and tests depend on them.
//
// It never reaches into the supervisor: the processes use only the worker
// SDK, and the workload only the client package.
package demo
