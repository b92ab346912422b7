// Package w01 holds processes that declare inputs they never read, and
// some that read every input or read paths built at run time.
package w01

import (
	"github.com/theus-run/theus/shm"
	"github.com/theus-run/theus/worker"
)

func Defs() []worker.Def {
	return []worker.Def{
		worker.Process("unread", worker.Contract{Inputs: []string{
			"domain.a",
			"domain.b", // want `POP-W01 process "unread" declares the input domain.b but never reads it`
			"heavy.{key}",
		}}, unread),
		worker.Process("dynamic", worker.Contract{Inputs: []string{"domain.a", "domain.b"}}, dynamic),
		worker.Process("escapes", worker.Contract{Inputs: []string{"domain.a"}}, escapes),
	}
}

func unread(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	var n int
	if _, err := ctx.Get("domain.a.x", &n); err != nil {
		return worker.None{}, err
	}
	return worker.None{}, tensor(ctx)
}

func tensor(ctx *worker.Ctx) error {
	_, _, err := ctx.Tensor("heavy.w")
	return err
}

func dynamic(ctx *worker.Ctx, in struct{ Which string }) (worker.None, error) {
	_, _, err := ctx.Raw("domain." + in.Which) // may read domain.b: W01 stays silent
	return worker.None{}, err
}

// escapes gives its Ctx to code the analyzer does not follow.
func escapes(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	return worker.None{}, run(ctx, shm.F32)
}

var run = func(ctx *worker.Ctx, _ shm.DType) error {
	_, _, err := ctx.Raw("domain.a")
	return err
}
