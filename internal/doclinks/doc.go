// Package doclinks holds a test that keeps the repository's documentation
// self-contained: every relative link of a Markdown file points to a file
// of the repository (and, with a #fragment, to a heading of it), and no
// Markdown or Go file refers to a document that a clone does not have. It
// has no code used at run time.
package doclinks
