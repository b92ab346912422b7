package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"unsafe"

	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
)

// Tensor is a tensor of the HEAVY zone as a process sees it: its dtype,
// its shape and its bytes, in place. An input's bytes are the shared
// mapping itself, read-only: writing them kills the worker (SIGSEGV), the
// kernel enforces it. A tensor made by NewTensor is writable until the
// process returns. Neither may be used after the process returns.
type Tensor struct {
	d    shm.Descriptor
	data []byte
}

// DType is the tensor's element type.
func (t Tensor) DType() shm.DType { return t.d.DType }

// Shape is the tensor's shape (a copy).
func (t Tensor) Shape() []int64 { return slices.Clone(t.d.Shape) }

// Strides are the tensor's strides in elements; nil for C order.
func (t Tensor) Strides() []int64 { return slices.Clone(t.d.Strides) }

// Bytes are the tensor's bytes, in place.
func (t Tensor) Bytes() []byte { return t.data }

// Inline reports whether the tensor traveled inline (small tensors do)
// rather than through the arena.
func (t Tensor) Inline() bool { return t.d.Inline() }

// Elems returns the tensor's elements as a []T over its bytes, without a
// copy. T must match the dtype: float64 F64, float32 F32, int64 I64,
// int32 I32, int16 I16, int8 I8, uint8 U8 or BOOL, uint16 F16 or BF16
// (the raw bits).
func Elems[T float64 | float32 | int64 | int32 | int16 | int8 | uint8 | uint16](t Tensor) ([]T, error) {
	var zero T
	ok := false
	switch any(zero).(type) {
	case float64:
		ok = t.d.DType == shm.F64
	case float32:
		ok = t.d.DType == shm.F32
	case int64:
		ok = t.d.DType == shm.I64
	case int32:
		ok = t.d.DType == shm.I32
	case int16:
		ok = t.d.DType == shm.I16
	case int8:
		ok = t.d.DType == shm.I8
	case uint8:
		ok = t.d.DType == shm.U8 || t.d.DType == shm.BOOL
	case uint16:
		ok = t.d.DType == shm.F16 || t.d.DType == shm.BF16
	}
	if !ok {
		return nil, fmt.Errorf("worker: a %s tensor has no %T elements", t.d.DType, zero)
	}
	if len(t.data) == 0 {
		return []T{}, nil
	}
	return shm.View[T](t.data), nil
}

// tensors is the HEAVY zone as one worker reaches it: nil in workertest,
// where every tensor is inline.
type tensors struct {
	slabs *slabs
	alloc func(ctx context.Context, dispatch uint64, size int64) (*protocol.Grant, error)
}

// output is a tensor made by NewTensor, written to the delta when the
// process returns.
type output struct {
	path string
	t    Tensor
}

// Tensor returns the tensor at a HEAVY path among the inputs, and whether
// there is one. Reading outside the contract is a contract violation, as
// for Raw.
func (c *Ctx) Tensor(path string) (Tensor, bool, error) {
	b, ok, err := c.Raw(path)
	if err != nil || !ok {
		return Tensor{}, ok, err
	}
	d, err := shm.ParseDescriptor(b, len(b))
	if err != nil {
		return Tensor{}, true, fmt.Errorf("worker: value at %s: %w", path, err)
	}
	if d.Inline() {
		return Tensor{d: d, data: aligned(d.Data)}, true, nil
	}
	if c.heavy == nil || c.heavy.slabs == nil {
		return Tensor{}, true, fmt.Errorf("worker: %s is in the HEAVY arena, which this worker does not map", path)
	}
	r, err := c.heavy.slabs.region(c, d.Slab)
	if err != nil {
		return Tensor{}, true, err
	}
	if d.Off <= 0 || d.Len < 0 || d.Off > r.Size()-d.Len {
		return Tensor{}, true, fmt.Errorf("worker: %s: %w: bytes [%d, +%d) outside slab %d", path, shm.ErrBadDescriptor, d.Off, d.Len, d.Slab)
	}
	return Tensor{d: d, data: r.Bytes(d.Off, d.Len)}, true, nil
}

// aligned returns b, or a copy of it aligned for any element type.
func aligned(b []byte) []byte {
	if len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%8 == 0 {
		return b
	}
	w := make([]uint64, (len(b)+7)/8)
	out := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(b))
	copy(out, b)
	return out
}

// NewTensor makes a tensor of dtype dt and shape for
// the HEAVY path path and adds it to the delta: the process fills it
// through Bytes or Elems before it returns. A tensor up to the inline
// limit is private memory that travels inline; a larger one is a block of
// this worker's slab (one round trip to the supervisor), whose contents
// are whatever the slab held: write every element. Errors: a path outside
// the contract or outside the HEAVY zone (contract violations), or
// arena_full when the slab has no room.
func (c *Ctx) NewTensor(path string, dt shm.DType, shape ...int64) (Tensor, error) {
	p, err := contract.Parse(path)
	if err != nil {
		return Tensor{}, c.fail(err)
	}
	if err := c.c.CheckWrite(p, contract.OpSet); err != nil {
		return Tensor{}, c.fail(err)
	}
	if !p.InZone(contract.ZoneHeavy) {
		return Tensor{}, c.fail(&protocol.Error{Code: protocol.CodeBadTensor, Message: "a tensor must be written at a HEAVY path (heavy.* or *.heavy_*)", Path: path})
	}
	d := shm.Descriptor{DType: dt, Shape: slices.Clone(shape)}
	if d.Shape == nil {
		d.Shape = []int64{}
	}
	if dt.Size() == 0 {
		return Tensor{}, fmt.Errorf("worker: NewTensor %s: %w: dtype %s", path, shm.ErrBadDescriptor, dt)
	}
	n, err := d.Elems()
	if err != nil {
		return Tensor{}, fmt.Errorf("worker: NewTensor %s: %w", path, err)
	}
	if n > (1<<62)/dt.Size() {
		return Tensor{}, fmt.Errorf("worker: NewTensor %s: %w: %d elements", path, shm.ErrBadDescriptor, n)
	}
	d.Len = n * dt.Size()
	var t Tensor
	if c.heavy == nil || d.Len <= int64(c.heavy.slabs.inlineMax) || c.heavy.alloc == nil {
		w := make([]uint64, (d.Len+7)/8)
		t = Tensor{d: d, data: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), d.Len)}
	} else {
		g, err := c.heavy.alloc(c, c.dispatch, d.Len)
		if err != nil {
			return Tensor{}, fmt.Errorf("worker: NewTensor %s: %w", path, err)
		}
		r, err := c.heavy.slabs.region(c, g.Slab)
		if err != nil {
			return Tensor{}, err
		}
		if !r.Writable() || g.Off <= 0 || g.Len < d.Len || g.Off > r.Size()-d.Len {
			return Tensor{}, fmt.Errorf("worker: NewTensor %s: the supervisor granted [%d, +%d) of slab %d, which this worker cannot write", path, g.Off, g.Len, g.Slab)
		}
		d.Slab, d.Off, d.Gen = g.Slab, g.Off, g.Gen
		t = Tensor{d: d, data: r.Bytes(d.Off, d.Len)}
	}
	c.outputs = append(c.outputs, output{path: path, t: t})
	return t, nil
}

// flushTensors adds the tensors made by NewTensor to the delta.
func (c *Ctx) flushTensors() error {
	for _, o := range c.outputs {
		d := o.t.d
		if d.Inline() {
			d.Data = o.t.data
		}
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("worker: tensor %s: %w", o.path, err)
		}
		c.writes = append(c.writes, protocol.Write{Path: o.path, Op: uint8(contract.OpSet), Value: b})
	}
	return nil
}

// Descriptor returns the tensor's descriptor (a copy): where it lives,
// its dtype, shape and strides.
func (t Tensor) Descriptor() shm.Descriptor {
	d := t.d
	d.Shape, d.Strides, d.Data = slices.Clone(d.Shape), slices.Clone(d.Strides), nil
	return d
}
