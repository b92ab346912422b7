// Package python holds the Python SDK (python/theus, a Python package)
// and runs its tests: the test in this package runs pytest over
// python/tests under Debian's /usr/bin/python3, so `go test ./...` runs
// them with the rest. The package has no Go code of its own.
package python
