package ring

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// The memfd's layout. Page 0 holds the file header and the control blocks
// of both rings; the request ring's data follows it, then the reply
// ring's. Every field a side writes sits on its own 128-byte slot (two
// cache lines, so the adjacent-line prefetcher does not share it either).
const (
	magic   = 0x474e5253_55454854 // "THEUSRNG" read little-endian
	version = 1

	// File header, at offset 0.
	hdrMagic    = 0  // uint64 magic
	hdrVersion  = 8  // uint32 version
	hdrCapacity = 16 // uint64 bytes of data per ring
	hdrReqCtl   = 24 // uint64 offset of the request ring's control block
	hdrReqData  = 32 // uint64 offset of the request ring's data
	hdrRepCtl   = 40 // uint64 offset of the reply ring's control block
	hdrRepData  = 48 // uint64 offset of the reply ring's data

	// A control block, relative to its start.
	ctlTail      = 0   // uint64, written by the producer: bytes published
	ctlHead      = 128 // uint64, written by the consumer: bytes consumed
	ctlConsPark  = 256 // uint32 futex word: the consumer parks (waits for records)
	ctlProdPark  = 384 // uint32 futex word: the producer parks (waits for space)
	ctlPoll      = 512 // uint32, written by the producer: µs the consumer may poll before it parks
	ctlSize      = 640 // one control block
	reqCtlOffset = 1024
	repCtlOffset = 2048
	dataOffset   = 4096 // the request ring's data; the reply ring's follows it

	// A record header: the payload length in the low 32 bits and the kind
	// in the high 32, in the host's byte order (both sides share a host).
	headerSize = 8
	kindRecord = 1 // a record: header, payload, padding to 8 bytes
	kindWrap   = 2 // the rest of the buffer is unused; the next record is at 0

	// MinCapacity is the smallest ring New accepts.
	MinCapacity = 4096
)

// Park word values.
const (
	running = 0 // the owner of the word is not waiting
	parked  = 1 // it is about to wait or waits: wake it
)

// MaxRecord is the largest payload a ring of capacity bytes carries: half
// the ring less a header, so an empty ring always has room for one,
// wherever its head is.
func MaxRecord(capacity int) int { return capacity/2 - headerSize }

// padded is the bytes a record of n payload bytes takes in the ring.
func padded(n uint64) uint64 { return headerSize + (n+7)&^7 }

// ringMem is one ring as mapped in this process: its control words and
// its data. It is built from offsets this process chose or checked; it
// never reads an offset back from shared memory.
type ringMem struct {
	name     string // "request" or "reply", for errors
	tail     *atomic.Uint64
	head     *atomic.Uint64
	consPark *atomic.Uint32
	prodPark *atomic.Uint32
	// poll is the producer's advice: how many microseconds the consumer
	// may poll the ring before it parks (Writer.SetPoll). Shared memory
	// the producer writes: a Reader follows it only when told to.
	poll *atomic.Uint32
	data []byte
	size uint64
	max  uint64 // MaxRecord(size)
	// bell is the write end of the pipe that wakes the consumer (see
	// Pair.SetDoorbells), for the producer; -1: the futex on consPark.
	bell int
}

// newRingMem views mem[ctl:ctl+ctlSize] as a control block and
// mem[data:data+size] as its data. The caller has checked the bounds and
// that ctl is 8-byte aligned.
func newRingMem(name string, mem []byte, ctl, data, size uint64) ringMem {
	word := func(off uint64) unsafe.Pointer { return unsafe.Pointer(&mem[ctl+off]) }
	return ringMem{
		name:     name,
		tail:     (*atomic.Uint64)(word(ctlTail)),
		head:     (*atomic.Uint64)(word(ctlHead)),
		consPark: (*atomic.Uint32)(word(ctlConsPark)),
		prodPark: (*atomic.Uint32)(word(ctlProdPark)),
		poll:     (*atomic.Uint32)(word(ctlPoll)),
		data:     mem[data : data+size : data+size],
		size:     size,
		max:      uint64(MaxRecord(int(size))),
		bell:     -1,
	}
}

// layout is where both rings lie in a mapping of size bytes.
type layout struct {
	capacity uint64
}

func (l layout) size() uint64 { return dataOffset + 2*l.capacity }

// writeHeader writes the file header of l into mem.
func (l layout) writeHeader(mem []byte) {
	e := binary.NativeEndian
	e.PutUint64(mem[hdrMagic:], magic)
	e.PutUint32(mem[hdrVersion:], version)
	e.PutUint64(mem[hdrCapacity:], l.capacity)
	e.PutUint64(mem[hdrReqCtl:], reqCtlOffset)
	e.PutUint64(mem[hdrReqData:], dataOffset)
	e.PutUint64(mem[hdrRepCtl:], repCtlOffset)
	e.PutUint64(mem[hdrRepData:], dataOffset+l.capacity)
}

// readHeader reads and checks the file header of a mapping of len(mem)
// bytes. The creator is trusted, but its bytes are checked all the same
// so that a wrong descriptor is an error, never a fault.
func readHeader(mem []byte) (layout, error) {
	if len(mem) < dataOffset {
		return layout{}, fmt.Errorf("%w: %d bytes, smaller than its header page", ErrBadLayout, len(mem))
	}
	e := binary.NativeEndian
	if m := e.Uint64(mem[hdrMagic:]); m != magic {
		return layout{}, fmt.Errorf("%w: magic %#x", ErrBadLayout, m)
	}
	if v := e.Uint32(mem[hdrVersion:]); v != version {
		return layout{}, fmt.Errorf("%w: version %d, want %d", ErrBadLayout, v, version)
	}
	l := layout{capacity: e.Uint64(mem[hdrCapacity:])}
	if l.capacity < MinCapacity || l.capacity%8 != 0 || l.capacity > uint64(len(mem)) || l.size() > uint64(len(mem)) {
		return layout{}, fmt.Errorf("%w: capacity %d in a mapping of %d bytes", ErrBadLayout, l.capacity, len(mem))
	}
	want := [...]struct{ off, val uint64 }{
		{hdrReqCtl, reqCtlOffset}, {hdrReqData, dataOffset},
		{hdrRepCtl, repCtlOffset}, {hdrRepData, dataOffset + l.capacity},
	}
	for _, w := range want {
		if got := e.Uint64(mem[w.off:]); got != w.val {
			return layout{}, fmt.Errorf("%w: header field at %d is %d, want %d", ErrBadLayout, w.off, got, w.val)
		}
	}
	return l, nil
}

// rings returns the request and reply rings of mem, laid out as l.
func (l layout) rings(mem []byte) (req, rep ringMem) {
	return newRingMem("request", mem, reqCtlOffset, dataOffset, l.capacity),
		newRingMem("reply", mem, repCtlOffset, dataOffset+l.capacity, l.capacity)
}
