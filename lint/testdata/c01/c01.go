// Package c01 holds processes that use literal paths their contracts do
// not declare, and some whose paths are all covered.
package c01

import "github.com/theus-run/theus/worker"

const accounts = "domain.accounts"

func Defs() []worker.Def {
	return []worker.Def{
		worker.Process("undeclared", worker.Contract{Inputs: []string{"domain.a"}, Outputs: []string{"domain.b"}}, undeclared),
		worker.Process("covered", worker.Contract{
			Inputs:  []string{"domain.a", accounts + ".{from}"},
			Outputs: []string{"domain.b", accounts + ".{from}"},
		}, covered),
		worker.Process("shared.narrow", worker.Contract{Outputs: []string{"domain.b"}}, shared),
		worker.Process("shared.wide", worker.Contract{Outputs: []string{"domain"}}, shared),
		worker.Process("fault", worker.Contract{Outputs: []string{"domain.b"}}, fault),
		worker.Process("no.reason", worker.Contract{Outputs: []string{"domain.b"}}, noReason),
		worker.Process("dynamic", dynamicContract(), dynamic),
	}
}

func undeclared(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	var n int
	if _, err := ctx.Get("domain.c", &n); err != nil { // want `POP-C01 ctx.Get reads domain.c, which the contract of process "undeclared" does not declare among its inputs`
		return worker.None{}, err
	}
	if _, _, err := ctx.Raw("domain"); err != nil { // want `POP-C01 ctx.Raw reads domain, which`
		return worker.None{}, err
	}
	if _, err := ctx.Children("domain.a.x..y"); err != nil { // want `POP-C01 ctx.Children of an invalid path`
		return worker.None{}, err
	}
	return worker.None{}, ctx.Set("domain.a", n) // want `POP-C01 ctx.Set writes domain.a, which the contract of process "undeclared" does not declare among its outputs`
}

func covered(ctx *worker.Ctx, in struct{ From string }) (worker.None, error) {
	var n int
	if _, err := ctx.Get("domain.a.deep", &n); err != nil {
		return worker.None{}, err
	}
	if _, err := ctx.Get(accounts+".ada", &n); err != nil {
		return worker.None{}, err
	}
	if err := ctx.Set(accounts+"."+in.From, n); err != nil { // built at run time: not guessed at
		return worker.None{}, err
	}
	return worker.None{}, ctx.Set("domain.b", n)
}

func shared(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	return worker.None{}, write(ctx)
}

func write(ctx *worker.Ctx) error {
	return ctx.Set("domain.c", 1) // want `POP-C01 ctx.Set writes domain.c, which the contract of process "shared.narrow"`
}

func fault(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	//theus-lint:ignore POP-C01 this process breaks its contract on purpose
	return worker.None{}, ctx.Set("domain.c", 1)
}

func noReason(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	//theus-lint:ignore POP-C01
	return worker.None{}, ctx.Set("domain.c", 1) // want `POP-C01 ctx.Set writes domain.c, which the contract of process "no.reason"`
}

func dynamicContract() worker.Contract { return worker.Contract{Outputs: []string{"domain.b"}} }

func dynamic(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	return worker.None{}, ctx.Set("domain.c", 1) // the contract is not a literal: not checked
}
