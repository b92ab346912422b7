package heavy

import (
	"fmt"
	"os"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

func packet(op byte, s *Slab) []byte {
	return protocol.SlabPacket{Op: op, Slab: s.id, Size: s.region.Size()}.Append(nil)
}

// Reader is a worker's packet socket as the zone sees it: every slab's
// descriptor goes there.
type Reader struct {
	sock   *os.File
	own    *Slab
	failed chan struct{} // closed when a send fails
	err    error         // why; set before failed is closed
}

// Failed is closed when the worker stopped reading its packets (Err says
// how); the worker must then be stopped. A nil Reader never fails.
func (r *Reader) Failed() <-chan struct{} {
	if r == nil {
		return nil
	}
	return r.failed
}

// Err returns why r failed, once Failed is closed.
func (r *Reader) Err() error { return r.err }

// Attach sends a new worker its own slab (read-write; nil for none) and
// every sealed slab (read-only), then keeps it informed of slabs sealed
// and closed later, until Detach; see Reader.Failed.
func (z *Zone) Attach(sock *os.File, own *Slab) (*Reader, error) {
	r := &Reader{sock: sock, own: own, failed: make(chan struct{})}
	z.mu.Lock()
	defer z.mu.Unlock()
	if own != nil {
		if err := ipc.SendPacket(sock, packet(protocol.SlabMapRW, own), own.region.File()); err != nil {
			return nil, fmt.Errorf("heavy: send slab %d: %w", own.id, err)
		}
	}
	for _, s := range z.slabs {
		if s.sealed && s != own {
			if err := ipc.SendPacket(sock, packet(protocol.SlabMapRO, s), s.ro); err != nil {
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
	if r.err != nil {
		return
	}
	var err error
	if f != nil {
		err = ipc.SendPacket(r.sock, packet(op, s), f)
	} else {
		err = ipc.SendPacket(r.sock, packet(op, s))
	}
	if err != nil {
		r.err = fmt.Errorf("heavy: slab %d to a worker: %w", s.id, err)
		close(r.failed)
	}
}
