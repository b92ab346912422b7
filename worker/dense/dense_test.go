package dense_test

import (
	"context"
	"errors"
	"testing"

	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
	"github.com/theus-run/theus/worker"
	"github.com/theus-run/theus/worker/dense"
)

// A matrix from Of is the tensor's memory: a write through it shows in
// the tensor's elements, and a product lands in an output tensor.
func TestOfSharesMemory(t *testing.T) {
	var checked bool
	p := worker.Process("mat", worker.Contract{Outputs: []string{"heavy.a", "heavy.b"}}, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
		ta, err := ctx.NewTensor("heavy.a", shm.F64, 2, 3)
		if err != nil {
			return worker.None{}, err
		}
		a, err := dense.Of(ta)
		if err != nil {
			return worker.None{}, err
		}
		for i := range 2 {
			for j := range 3 {
				a.Set(i, j, float64(i*3+j))
			}
		}
		xs, _ := worker.Elems[float64](ta)
		if xs[5] != 5 || xs[1] != 1 {
			t.Errorf("the tensor holds %v after writes through the matrix", xs)
		}
		tb, err := ctx.NewTensor("heavy.b", shm.F64, 2, 2)
		if err != nil {
			return worker.None{}, err
		}
		b, _ := dense.Of(tb)
		b.Mul(a, a.T()) // [[5 14] [14 50]]
		ys, _ := worker.Elems[float64](tb)
		if ys[0] != 5 || ys[1] != 14 || ys[3] != 50 {
			t.Errorf("product %v", ys)
		}
		checked = true
		return worker.None{}, nil
	})
	res := p.Run(context.Background(), &protocol.Dispatch{ID: 1, Attempt: 1, Process: "mat"})
	if res.Err != nil || !checked {
		t.Fatalf("%v (ran: %v)", res.Err, checked)
	}
}

func TestOfRefuses(t *testing.T) {
	p := worker.Process("bad", worker.Contract{Outputs: []string{"heavy.v", "heavy.f", "heavy.c"}}, func(ctx *worker.Ctx, _ worker.None) (worker.None, error) {
		v, _ := ctx.NewTensor("heavy.v", shm.F64, 6)
		f, _ := ctx.NewTensor("heavy.f", shm.F32, 2, 3)
		c, _ := ctx.NewTensor("heavy.c", shm.F64, 2, 2, 2)
		for _, tt := range []worker.Tensor{v, f, c} {
			if _, err := dense.Of(tt); !errors.Is(err, dense.ErrNotMatrix) {
				t.Errorf("%v %v: err = %v, want ErrNotMatrix", tt.DType(), tt.Shape(), err)
			}
		}
		return worker.None{}, nil
	})
	if res := p.Run(context.Background(), &protocol.Dispatch{ID: 1, Attempt: 1, Process: "bad"}); res.Err != nil {
		t.Fatal(res.Err)
	}
}
