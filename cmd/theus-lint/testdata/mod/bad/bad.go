// Package bad registers a process that breaks two POP rules.
package bad

import (
	"fmt"

	"github.com/theus-run/theus/worker"
)

func Defs() []worker.Def {
	return []worker.Def{worker.Process("bad", worker.Contract{Outputs: []string{"domain.a"}}, bad)}
}

func bad(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	fmt.Println("hello")
	return worker.None{}, ctx.Set("domain.b", 1)
}
