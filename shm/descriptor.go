package shm

import (
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// DType is a tensor's element type; names are safetensors'.
type DType uint8

// The element types.
const (
	F64 DType = iota + 1
	F32
	F16
	BF16
	I64
	I32
	I16
	I8
	U8
	BOOL
)

var dtypes = [...]struct {
	name string
	size int64
}{{}, {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1}, {"U8", 1}, {"BOOL", 1}}

func (t DType) valid() bool { return t >= F64 && t <= BOOL }

// Size is the size of one element in bytes (0 for an invalid DType).
func (t DType) Size() int64 {
	if !t.valid() {
		return 0
	}
	return dtypes[t].size
}

func (t DType) String() string {
	if !t.valid() {
		return fmt.Sprintf("dtype(%d)", uint8(t))
	}
	return dtypes[t].name
}

// MarshalText writes the dtype's name.
func (t DType) MarshalText() ([]byte, error) {
	if !t.valid() {
		return nil, fmt.Errorf("%w: %s", ErrBadDescriptor, t)
	}
	return []byte(dtypes[t].name), nil
}

// UnmarshalText reads a dtype's name.
func (t *DType) UnmarshalText(b []byte) error {
	v, err := ParseDType(string(b))
	*t = v
	return err
}

// ParseDType returns the DType named s ("F32", ...).
func ParseDType(s string) (DType, error) {
	for t := F64; t <= BOOL; t++ {
		if dtypes[t].name == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown dtype %q", ErrBadDescriptor, s)
}

// MaxRank bounds a tensor's dimensions.
const MaxRank = 8

// ErrBadDescriptor is wrapped by every descriptor validation error.
var ErrBadDescriptor = errors.New("shm: bad descriptor")

// Descriptor names a tensor in a region: a block (offset and generation),
// the bytes it uses, and how to read them. Strides count elements, not
// bytes; nil means C order (row-major, contiguous).
//
// Its JSON form is what the DATA zone stores at a HEAVY path. A small
// tensor may instead carry its bytes inline (Data, base64 in JSON; Slab,
// Off and Gen zero): the same API reads both.
type Descriptor struct {
	Slab    uint32  `json:"slab,omitempty"` // the region; 0 for an inline tensor
	Off     int64   `json:"off,omitempty"`
	Len     int64   `json:"len"` // bytes used, <= the block's length
	Gen     uint64  `json:"gen,omitempty"`
	DType   DType   `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Strides []int64 `json:"strides,omitempty"`
	Data    []byte  `json:"data,omitempty"` // an inline tensor's bytes
}

// Elems is the number of elements of the shape (1 for a scalar).
func (d Descriptor) Elems() (int64, error) {
	if len(d.Shape) > MaxRank {
		return 0, fmt.Errorf("%w: rank %d over %d", ErrBadDescriptor, len(d.Shape), MaxRank)
	}
	n := int64(1)
	for _, s := range d.Shape {
		if s < 0 {
			return 0, fmt.Errorf("%w: negative dimension %d", ErrBadDescriptor, s)
		}
		if s != 0 && n > math.MaxInt64/s {
			return 0, fmt.Errorf("%w: shape %v overflows", ErrBadDescriptor, d.Shape)
		}
		n *= s
	}
	return n, nil
}

// Check validates d against the allocator: a live block at d.Off with
// generation d.Gen, owned by owner unless owner is "*", whose length
// covers d.Len; a known dtype; and a shape and strides that never reach
// outside d.Len. d must be a copy the caller owns, never a view of shared
// memory: a peer could change it between check and use.
func (d Descriptor) Check(a *Allocator, owner string) (Block, error) {
	b, err := a.Lookup(d.Off, d.Gen)
	if err != nil {
		return Block{}, err
	}
	if owner != "*" && b.Owner != owner {
		return Block{}, fmt.Errorf("%w: block at %d is %q's, not %q's", ErrNotOwner, d.Off, b.Owner, owner)
	}
	if d.Len < 0 || d.Len > b.Len {
		return Block{}, fmt.Errorf("%w: %d bytes in a block of %d", ErrBadDescriptor, d.Len, b.Len)
	}
	if !d.DType.valid() {
		return Block{}, fmt.Errorf("%w: %s", ErrBadDescriptor, d.DType)
	}
	n, err := d.Elems()
	if err != nil {
		return Block{}, err
	}
	if d.Strides == nil {
		if n > d.Len/d.DType.Size() || n*d.DType.Size() != d.Len {
			return Block{}, fmt.Errorf("%w: shape %v of %s needs %d bytes, descriptor says %d", ErrBadDescriptor, d.Shape, d.DType, n*d.DType.Size(), d.Len)
		}
		return b, nil
	}
	if len(d.Strides) != len(d.Shape) {
		return Block{}, fmt.Errorf("%w: %d strides for %d dimensions", ErrBadDescriptor, len(d.Strides), len(d.Shape))
	}
	if n == 0 {
		return b, nil
	}
	// The farthest element: sum of (dim-1)*stride; strides must be >= 0.
	var last int64
	for i, s := range d.Strides {
		if s < 0 || (d.Shape[i] > 1 && s > (math.MaxInt64-last)/(d.Shape[i]-1)) {
			return Block{}, fmt.Errorf("%w: stride %d", ErrBadDescriptor, s)
		}
		last += (d.Shape[i] - 1) * s
	}
	if last >= d.Len/d.DType.Size() {
		return Block{}, fmt.Errorf("%w: strides %v reach element %d of %d", ErrBadDescriptor, d.Strides, last, d.Len/d.DType.Size())
	}
	return b, nil
}

// View is the typed view of a tensor's bytes: no copy. A view of a
// read-only mapping faults (SIGSEGV) if written: the kernel enforces it.
func View[T float64 | float32 | int64 | int32 | int16 | int8 | uint8 | uint16](b []byte) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(b) < size {
		return nil
	}
	if uintptr(unsafe.Pointer(&b[0]))%uintptr(size) != 0 {
		panic("shm: misaligned view")
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/size)
}
