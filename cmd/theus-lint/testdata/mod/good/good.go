// Package good registers a process that keeps the POP rules.
package good

import "github.com/theus-run/theus/worker"

func Defs() []worker.Def {
	return []worker.Def{worker.Process("good", worker.Contract{Outputs: []string{"domain.a"}}, good)}
}

func good(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	ctx.Log().Info().Msg("hello")
	return worker.None{}, ctx.Set("domain.a", 1)
}
