// Command testworker is the worker of the supervisor's tests: it serves
// testprocs.Processes. Those tests build it with the flags of their own
// binary (-race when they run under it).
package main

import "github.com/theus-run/theus/internal/testprocs"

func main() { testprocs.Main() }
