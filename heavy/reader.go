package heavy

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/theus-run/theus/ipc"
)

// The packets on a worker's packet socket: an op, a slab id and the
// slab's size, with the slab's descriptor for the map ops.
const (
	opMapRW byte = 1 // the worker's own slab: map it read-write, then say Mapped
	opMapRO byte = 2 // another slab: map it read-only
	opUnmap byte = 3 // a slab no tensor lives in any more: unmap it

	// PacketSize is the length of every packet.
	PacketSize = 13
)

// Packet is one decoded packet of a worker's packet socket.
type Packet struct {
	Op   byte
	Slab uint32
	Size int64
}

// Writable, ReadOnly and Unmap tell what a packet asks.
func (p Packet) Writable() bool { return p.Op == opMapRW }
func (p Packet) ReadOnly() bool { return p.Op == opMapRO }
func (p Packet) Unmap() bool    { return p.Op == opUnmap }

// ParsePacket decodes a packet and the number of descriptors it came
// with; anything else than the three well-formed ops is an error.
func ParsePacket(b []byte, files int) (Packet, error) {
	if len(b) != PacketSize {
		return Packet{}, fmt.Errorf("heavy: packet of %d bytes, want %d", len(b), PacketSize)
	}
	p := Packet{Op: b[0], Slab: binary.LittleEndian.Uint32(b[1:]), Size: int64(binary.LittleEndian.Uint64(b[5:]))}
	want := 1
	switch p.Op {
	case opMapRW, opMapRO:
	case opUnmap:
		want = 0
	default:
		return Packet{}, fmt.Errorf("heavy: packet op %d", p.Op)
	}
	if files != want || p.Slab == 0 || p.Size < 0 {
		return Packet{}, fmt.Errorf("heavy: packet op %d slab %d size %d with %d descriptors", p.Op, p.Slab, p.Size, files)
	}
	return p, nil
}

func appendPacket(op byte, slab uint32, size int64) []byte {
	b := make([]byte, PacketSize)
	b[0] = op
	binary.LittleEndian.PutUint32(b[1:], slab)
	binary.LittleEndian.PutUint64(b[5:], uint64(size))
	return b
}

// Reader is a worker's packet socket as the zone sees it: every slab's
// descriptor goes there.
type Reader struct {
	sock   *os.File
	own    *Slab
	fail   func(error)
	failed bool
}

// Attach sends a new worker its own slab (read-write; nil for none) and
// every sealed slab (read-only), then keeps it informed of slabs sealed
// and closed later, until Detach. fail is called (once, on its own
// goroutine) if the worker stops reading its packets.
func (z *Zone) Attach(sock *os.File, own *Slab, fail func(error)) (*Reader, error) {
	r := &Reader{sock: sock, own: own, fail: fail}
	z.mu.Lock()
	defer z.mu.Unlock()
	if own != nil {
		if err := ipc.SendPacket(sock, appendPacket(opMapRW, own.id, own.region.Size()), own.region.File()); err != nil {
			return nil, fmt.Errorf("heavy: send slab %d: %w", own.id, err)
		}
	}
	for _, s := range z.slabs {
		if s.sealed && s != own {
			if err := ipc.SendPacket(sock, appendPacket(opMapRO, s.id, s.region.Size()), s.ro); err != nil {
				return nil, fmt.Errorf("heavy: send slab %d: %w", s.id, err)
			}
		}
	}
	z.readers[r] = struct{}{}
	return r, nil
}

// Detach stops sending to r (its worker is gone).
func (z *Zone) Detach(r *Reader) {
	if r == nil {
		return
	}
	z.mu.Lock()
	delete(z.readers, r)
	z.mu.Unlock()
}

// send sends one packet (zone lock held); a reader that does not keep up
// is failed, once.
func (r *Reader) send(op byte, s *Slab, f *os.File) {
	if r.failed {
		return
	}
	var err error
	if f != nil {
		err = ipc.SendPacket(r.sock, appendPacket(op, s.id, s.region.Size()), f)
	} else {
		err = ipc.SendPacket(r.sock, appendPacket(op, s.id, s.region.Size()))
	}
	if err != nil {
		r.failed = true
		go r.fail(fmt.Errorf("heavy: slab %d to a worker: %w", s.id, err))
	}
}
