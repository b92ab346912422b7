// Package e01 holds processes that write to stdout, and some that do not.
package e01

import (
	"fmt"
	"os"

	"github.com/theus-run/theus/worker"
)

func Defs() []worker.Def {
	return []worker.Def{
		worker.Process("loud", worker.Contract{}, loud),
		worker.Process("quiet", worker.Contract{}, quiet),
		worker.Process("lit", worker.Contract{}, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
			println("x") // want `POP-E01 builtin println writes to the console`
			return worker.None{}, nil
		}),
	}
}

func loud(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	fmt.Println("hi") // want `POP-E01 fmt.Println writes to stdout`
	helper(0)
	return worker.None{}, nil
}

// helper is reached from loud, and calls itself: followed once.
func helper(n int) {
	fmt.Fprintln(os.Stdout, "x") // want `POP-E01 os.Stdout belongs to the protocol`
	if n < 3 {
		helper(n + 1)
	}
}

func quiet(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	ctx.Log().Info().Msg("fine")
	fmt.Fprintln(os.Stderr, "stderr is the log")
	_ = fmt.Sprintf("no output")
	return worker.None{}, nil
}

// Main is no process: it may print.
func Main() { fmt.Println("main output") }
