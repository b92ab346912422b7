package protocol

import (
	"encoding/binary"
	"fmt"
)

// A slab packet is what the supervisor sends on a worker's packet socket
// (THEUS_HEAVY_FD, a SOCK_SEQPACKET socket): SlabPacketSize bytes, an op,
// the slab id (uint32) and the slab's size (int64), both little-endian,
// with the slab's memfd attached by SCM_RIGHTS for the two map ops. Unlike
// frames it is fixed-size and carries no kind byte.
const (
	SlabMapRW byte = 1 // the worker's own slab: map it read-write, then send Mapped
	SlabMapRO byte = 2 // another worker's slab: map it read-only
	SlabUnmap byte = 3 // a slab no tensor lives in any more: unmap it

	// SlabPacketSize is the length of every slab packet.
	SlabPacketSize = 13
)

// SlabPacket is one decoded slab packet.
type SlabPacket struct {
	Op   byte
	Slab uint32
	Size int64
}

// Append appends p's encoding to b.
func (p SlabPacket) Append(b []byte) []byte {
	b = append(b, p.Op)
	b = binary.LittleEndian.AppendUint32(b, p.Slab)
	return binary.LittleEndian.AppendUint64(b, uint64(p.Size))
}

// ParseSlabPacket decodes a slab packet that arrived with files
// descriptors: exactly SlabPacketSize bytes, one of the three ops, a
// slab id other than 0, a size not below 0, one descriptor for the map
// ops and none for SlabUnmap. Anything else is an ErrBadFrame.
func ParseSlabPacket(b []byte, files int) (SlabPacket, error) {
	if len(b) != SlabPacketSize {
		return SlabPacket{}, fmt.Errorf("%w: slab packet of %d bytes, want %d", ErrBadFrame, len(b), SlabPacketSize)
	}
	p := SlabPacket{Op: b[0], Slab: binary.LittleEndian.Uint32(b[1:]), Size: int64(binary.LittleEndian.Uint64(b[5:]))}
	want := 1
	switch p.Op {
	case SlabMapRW, SlabMapRO:
	case SlabUnmap:
		want = 0
	default:
		return SlabPacket{}, fmt.Errorf("%w: slab packet op %d", ErrBadFrame, p.Op)
	}
	if files != want || p.Slab == 0 || p.Size < 0 {
		return SlabPacket{}, fmt.Errorf("%w: slab packet op %d slab %d size %d with %d descriptors", ErrBadFrame, p.Op, p.Slab, p.Size, files)
	}
	return p, nil
}
