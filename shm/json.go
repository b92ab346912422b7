package shm

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MaxDescriptorJSON bounds the JSON form of an arena descriptor (an
// inline one is bounded by its data and the caller's limit on it).
const MaxDescriptorJSON = 4096

// ParseDescriptor decodes the JSON form of a descriptor strictly (no
// unknown fields, nothing after it) and checks what it can without an
// allocator: a known dtype, a shape of at most MaxRank dimensions that
// does not overflow, and for an inline tensor, data of exactly the
// shape's size and no strides. An arena descriptor must still pass Check.
// maxInline bounds an inline tensor's bytes.
func ParseDescriptor(b []byte, maxInline int) (Descriptor, error) {
	var d Descriptor
	if len(b) > MaxDescriptorJSON+maxInline*4/3+8 {
		return d, fmt.Errorf("%w: %d bytes of JSON", ErrBadDescriptor, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Descriptor{}, fmt.Errorf("%w: %w", ErrBadDescriptor, err)
	}
	if dec.More() {
		return Descriptor{}, fmt.Errorf("%w: data after the descriptor", ErrBadDescriptor)
	}
	if !d.DType.valid() {
		return Descriptor{}, fmt.Errorf("%w: no dtype", ErrBadDescriptor)
	}
	if d.Shape == nil {
		return Descriptor{}, fmt.Errorf("%w: no shape", ErrBadDescriptor)
	}
	n, err := d.Elems()
	if err != nil {
		return Descriptor{}, err
	}
	if d.Len < 0 {
		return Descriptor{}, fmt.Errorf("%w: length %d", ErrBadDescriptor, d.Len)
	}
	if !d.Inline() {
		if d.Data != nil {
			return Descriptor{}, fmt.Errorf("%w: inline data in an arena descriptor", ErrBadDescriptor)
		}
		if d.Off <= 0 || d.Gen == 0 {
			return Descriptor{}, fmt.Errorf("%w: arena descriptor without offset or generation", ErrBadDescriptor)
		}
		return d, nil
	}
	if d.Off != 0 || d.Gen != 0 || d.Strides != nil {
		return Descriptor{}, fmt.Errorf("%w: an inline tensor has no offset, generation or strides", ErrBadDescriptor)
	}
	if len(d.Data) > maxInline {
		return Descriptor{}, fmt.Errorf("%w: %d inline bytes, over %d", ErrBadDescriptor, len(d.Data), maxInline)
	}
	if n > int64(len(d.Data)) || n*d.DType.Size() != int64(len(d.Data)) || d.Len != int64(len(d.Data)) {
		return Descriptor{}, fmt.Errorf("%w: shape %v of %s needs %d bytes; %d inline, length %d", ErrBadDescriptor, d.Shape, d.DType, n*d.DType.Size(), len(d.Data), d.Len)
	}
	return d, nil
}

// Inline reports whether the tensor's bytes are in the descriptor.
func (d Descriptor) Inline() bool { return d.Slab == 0 }
