// Package e07 holds processes that write paths of the wrong zone, and
// some that write theirs as their zones allow.
package e07

import "github.com/theus-run/theus/worker"

const signal = "domain.sig_go"

func Defs() []worker.Def {
	return []worker.Def{
		worker.Process("zones", worker.Contract{
			Outputs: []string{"domain.const_rate", "domain.meta_hits", "domain.log_events", "domain.x"},
		}, zones),
		worker.Process("pure.signal", worker.Contract{Outputs: []string{signal, "domain.x"}}, pureSignal),
		worker.Process("effect.signal", worker.Contract{Outputs: []string{signal, "domain.x"}, Effect: true}, effectSignal),
		worker.Process("log.ok", worker.Contract{Outputs: []string{"domain.log_events"}}, logOK),
		worker.Process("ignored", worker.Contract{Outputs: []string{signal}}, ignored),
	}
}

func zones(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	if err := ctx.Set("domain.const_rate", 2); err != nil { // want `POP-E07 ctx.Set writes domain.const_rate, a CONST path`
		return worker.None{}, err
	}
	if err := ctx.Set("domain.meta_hits", 2); err != nil { // want `POP-E07 ctx.Set writes domain.meta_hits, a META path`
		return worker.None{}, err
	}
	if err := ctx.Set("domain.log_events.3", "x"); err != nil { // want `POP-E07 ctx.Set writes domain.log_events.3 under the LOG domain.log_events`
		return worker.None{}, err
	}
	if err := ctx.Append("domain.x", "x"); err != nil { // want `POP-E07 ctx.Append to domain.x, which is not the root of a LOG`
		return worker.None{}, err
	}
	return worker.None{}, nil
}

func pureSignal(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	if err := ctx.Set("domain.x", 1); err != nil {
		return worker.None{}, err
	}
	if err := ctx.Emit("topic", 1); err != nil { // want `POP-E07 process "pure.signal" is PURE and emits on the outbox`
		return worker.None{}, err
	}
	return worker.None{}, ctx.Set(signal, 1) // want `POP-E07 process "pure.signal" is PURE and writes the signal domain.sig_go`
}

func effectSignal(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	if err := ctx.Set("domain.x", 1); err != nil {
		return worker.None{}, err
	}
	if err := ctx.Emit("topic", 1); err != nil {
		return worker.None{}, err
	}
	return worker.None{}, ctx.Set(signal, 1)
}

func logOK(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	return worker.None{}, ctx.Append("domain.log_events", "x")
}

func ignored(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	//theus-lint:ignore POP-E07 this process shows that a PURE process may write a signal
	return worker.None{}, ctx.Set(signal, 1)
}
