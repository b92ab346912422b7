// Package dense views 2-D F64 tensors as gonum matrices without copying:
// the *mat.Dense reads and writes the tensor's own memory. It owns the
// conversion and nothing else; it never allocates a matrix's elements.
//
// An input tensor (Ctx.Tensor of an arena tensor) is mapped read-only: a
// write through its matrix kills the worker, as any write to an input
// does. Write only to matrices over outputs made with Ctx.NewTensor.
package dense

import (
	"errors"
	"fmt"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"

	"github.com/theus-run/theus/shm"
	"github.com/theus-run/theus/worker"
)

// ErrNotMatrix is wrapped by Of for a tensor that is not a 2-D F64 tensor
// with rows laid out one after another (column stride 1).
var ErrNotMatrix = errors.New("dense: not a 2-D F64 tensor in row order")

// Of returns t as an r×c matrix over its memory: C order, or strides
// [rowStride, 1] with rowStride ≥ c.
func Of(t worker.Tensor) (*mat.Dense, error) {
	if t.DType() != shm.F64 {
		return nil, fmt.Errorf("%w: dtype %s", ErrNotMatrix, t.DType())
	}
	shape, strides := t.Shape(), t.Strides()
	if len(shape) != 2 || shape[0] <= 0 || shape[1] <= 0 {
		return nil, fmt.Errorf("%w: shape %v", ErrNotMatrix, shape)
	}
	r, c := int(shape[0]), int(shape[1])
	stride := c
	if strides != nil {
		if len(strides) != 2 || strides[1] != 1 || strides[0] < shape[1] {
			return nil, fmt.Errorf("%w: strides %v", ErrNotMatrix, strides)
		}
		stride = int(strides[0])
	}
	xs, err := worker.Elems[float64](t)
	if err != nil {
		return nil, err
	}
	if need := (r-1)*stride + c; len(xs) < need {
		return nil, fmt.Errorf("%w: %d elements for a %dx%d matrix with row stride %d", ErrNotMatrix, len(xs), r, c, stride)
	}
	var m mat.Dense
	m.SetRawMatrix(blas64.General{Rows: r, Cols: c, Stride: stride, Data: xs[:(r-1)*stride+c]})
	return &m, nil
}
