// Package e05 holds processes that write through read views, and some
// that copy them first or write tensors of their own.
package e05

import (
	"slices"

	"github.com/theus-run/theus/shm"
	"github.com/theus-run/theus/worker"
)

func Defs() []worker.Def {
	c := worker.Contract{Inputs: []string{"domain.x", "heavy.t"}, Outputs: []string{"domain.y", "heavy.u"}}
	return []worker.Def{
		worker.Process("raw", c, raw),
		worker.Process("tensor", c, tensor),
		worker.Process("children", c, children),
		worker.Process("copies", c, copies),
	}
}

func raw(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	b, _, err := ctx.Raw("domain.x")
	if err != nil {
		return worker.None{}, err
	}
	b[0] = '1'        // want `POP-E05 assigns into a read view from ctx.Raw`
	copy(b[1:], "23") // want `POP-E05 copy writes into a read view from ctx.Raw`
	slices.Reverse(b) // want `POP-E05 slices.Reverse writes into a read view from ctx.Raw`
	zero(b)           // want `POP-E05 passes to zero, which writes into a read view from ctx.Raw`
	return worker.None{}, ctx.Set("domain.y", len(b))
}

func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

func tensor(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	xs, err := view(ctx)
	if err != nil {
		return worker.None{}, err
	}
	xs[0]++ // want `POP-E05 assigns into a read view from ctx.Tensor`
	t, _, err := ctx.Tensor("heavy.t")
	if err != nil {
		return worker.None{}, err
	}
	t.Bytes()[0] = 1 // want `POP-E05 assigns into a read view from ctx.Tensor`
	return worker.None{}, nil
}

// view returns the tensor heavy.t as float32s: a view.
func view(ctx *worker.Ctx) ([]float32, error) {
	t, _, err := ctx.Tensor("heavy.t")
	if err != nil {
		return nil, err
	}
	return worker.Elems[float32](t)
}

func children(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	m, err := ctx.Children("domain.x")
	if err != nil {
		return worker.None{}, err
	}
	for _, v := range m {
		v[0] = 'x' // want `POP-E05 assigns into a read view from ctx.Children`
	}
	m["new"] = []byte("1") // the map is the process's own
	return worker.None{}, nil
}

func copies(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
	b, _, err := ctx.Raw("domain.x")
	if err != nil {
		return worker.None{}, err
	}
	c := slices.Clone(b)
	c[0] = '1'
	b = make([]byte, 4) // b is no view any more
	b[0] = 1
	src, err := view(ctx)
	if err != nil {
		return worker.None{}, err
	}
	t, err := ctx.NewTensor("heavy.u", shm.F32, int64(len(src)))
	if err != nil {
		return worker.None{}, err
	}
	ys, err := worker.Elems[float32](t)
	if err != nil {
		return worker.None{}, err
	}
	for i, x := range src {
		ys[i] = 2 * x
	}
	zero(c)
	return worker.None{}, ctx.Set("domain.y", string(c))
}
