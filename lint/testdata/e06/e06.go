// Package e06 holds processes that ignore the errors of their writes,
// and some that do not.
package e06

import "github.com/theus-run/theus/worker"

func Defs() []worker.Def {
	c := worker.Contract{Outputs: []string{"domain.a", "domain.log_l"}, Effect: true}
	return []worker.Def{
		worker.Process("careless", c, careless),
		worker.Process("careful", c, careful),
	}
}

func careless(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	ctx.Set("domain.a", 1)            // want `POP-E06 the error of ctx.Set is ignored`
	_ = ctx.Append("domain.log_l", 1) // want `POP-E06 the error of ctx.Append is assigned to _`
	defer ctx.Delete("domain.a")      // want `POP-E06 the error of ctx.Delete is ignored \(deferred\)`
	ctx.Emit("topic", 1)              // want `POP-E06 the error of ctx.Emit is ignored`
	return worker.None{}, nil
}

func careful(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	if err := ctx.Set("domain.a", 1); err != nil {
		return worker.None{}, err
	}
	err := ctx.Append("domain.log_l", 1)
	if err != nil {
		return worker.None{}, err
	}
	return worker.None{}, ctx.Emit("topic", 1)
}
