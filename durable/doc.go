// Package durable owns the DATA zone's copy on disk: a bbolt file that a
// journal writes by group commit (every commit that arrives while one
// batch is being written and fsynced goes into the next batch, one fsync
// for all), and reads back, checked, when a supervisor starts: its layout
// with plain reads before bbolt maps it, then every record. A journal
// holds its state directory locked, and stops acknowledging if the
// file's name comes to name another file.
//
// It never decides what commits: the CAS store does, and hands each
// applied commit to the journal in version order (cas.Config.Committed).
// It never holds tensors: the HEAVY zone lives in memory only.
package durable
