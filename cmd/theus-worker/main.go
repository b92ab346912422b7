// Command theus-worker is the default worker plugin: it serves the demo
// processes (noop, counter.add, bank.*, tensor.*, and fault.* when the
// supervisor runs with --faults). theus-supervisor launches it (or
// re-executes itself in its place); run alone, it says so and exits.
package main

import (
	"os"

	"github.com/theus-run/theus/demo"
	"github.com/theus-run/theus/worker"
)

func main() {
	worker.Main(demo.Served(os.Getenv)...)
}
