// Package e08 holds processes that leak PRIVATE values into outputs, and
// some that read only what they may.
package e08

import (
	"encoding/json"

	"github.com/theus-run/theus/worker"
)

func Defs() []worker.Def {
	c := worker.Contract{Inputs: []string{"domain.x"}, Outputs: []string{"domain.y"}, Effect: true}
	return []worker.Def{
		worker.Process("leak.set", c, leakSet),
		worker.Process("leak.return", c, leakReturn),
		worker.Process("leak.emit", c, leakEmit),
		worker.Process("clean", c, clean),
	}
}

func leakSet(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	var key string
	if _, err := ctx.Get("domain.internal_key", &key); err != nil {
		return worker.None{}, err
	}
	masked := "k:" + key
	return worker.None{}, ctx.Set("domain.y", masked) // want `POP-E08 ctx.Set is given a value read from a PRIVATE path`
}

func leakReturn(ctx *worker.Ctx, _ worker.None) (string, error) {
	b, _, err := ctx.Raw("domain.internal_key")
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	return s, nil // want `POP-E08 returns a value read from a PRIVATE path`
}

func leakEmit(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	m, err := ctx.Children("internal_keys")
	if err != nil {
		return worker.None{}, err
	}
	return worker.None{}, ctx.Emit("keys", m) // want `POP-E08 ctx.Emit is given a value read from a PRIVATE path`
}

func clean(ctx *worker.Ctx, _ worker.None) (string, error) {
	var x string
	if _, err := ctx.Get("domain.x", &x); err != nil {
		return "", err
	}
	return x, ctx.Set("domain.y", x)
}
