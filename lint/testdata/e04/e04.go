// Package e04 holds processes that write package-level variables, and
// some that only read them or write their own.
package e04

import (
	"github.com/theus-run/theus/worker"
)

var (
	calls int
	seen  = map[string]bool{}
	last  struct{ name string }
	table = []int{1, 2, 3}
)

func Defs() []worker.Def {
	return []worker.Def{
		worker.Process("count", worker.Contract{}, count),
		worker.Process("local", worker.Contract{}, local),
	}
}

func count(ctx *worker.Ctx, in struct{ Name string }) (int, error) {
	calls++              // want `POP-E04 writes the package-level variable calls`
	seen[in.Name] = true // want `POP-E04 writes the package-level variable seen`
	remember(in.Name)
	delete(seen, "x") // want `POP-E04 writes the package-level variable seen`
	return calls, nil
}

func remember(name string) {
	last.name = name // want `POP-E04 writes the package-level variable last`
}

func local(ctx *worker.Ctx, in struct{ Name string }) (int, error) {
	n := calls + table[0] // reading is allowed
	m := map[string]bool{}
	m[in.Name] = true
	xs := make([]int, 1)
	copy(xs, table)
	n++
	return n + len(m) + xs[0], nil
}

// Reset is no process: it may write them.
func Reset() { calls = 0 }
