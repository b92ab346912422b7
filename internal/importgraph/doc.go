// Package importgraph holds the import graph of ../shared/DESIGN.md §6 as
// data and a test that fails when a package of this module imports another
// one it must not. It has no code used at run time.
package importgraph
