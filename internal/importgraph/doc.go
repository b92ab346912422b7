// Package importgraph holds the import graph of the module, which
// docs/ARCHITECTURE.md describes, as data, and tests that fail when a
// package of this module imports another one it must not, or when that
// page and the data disagree. It has no code used at run time.
package importgraph
