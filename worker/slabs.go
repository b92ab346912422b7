package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
)

// EnvHeavyFD names the inherited packet socket on which the supervisor
// sends the HEAVY zone's slabs.
const EnvHeavyFD = "THEUS_HEAVY_FD"

// slabs are the HEAVY slabs this worker maps: its own read-write, every
// other read-only. A goroutine reads the packet socket and maps and
// unmaps them; processes wait for a slab a descriptor names until it is
// mapped.
type slabs struct {
	sock      *os.File
	own       uint32 // from the Welcome; 0 for none
	inlineMax int

	mu      sync.Mutex
	m       map[uint32]*shm.Region
	changed chan struct{} // closed and replaced on every change
	err     error         // set when the socket ends
	done    chan struct{} // closed when read returns
}

func newSlabs(sock *os.File) *slabs {
	return &slabs{sock: sock, m: map[uint32]*shm.Region{}, changed: make(chan struct{}), done: make(chan struct{})}
}

// read maps and unmaps slabs as the supervisor says, until the socket
// ends or sends something that is not a packet.
func (s *slabs) read(log *zerolog.Logger) {
	defer close(s.done)
	buf := make([]byte, protocol.SlabPacketSize+1)
	var err error
	for err == nil {
		err = s.next(buf)
	}
	if !errors.Is(err, errPacketsEnd) {
		log.Error().Err(err).Msg("HEAVY slabs: no more slabs will be mapped")
	}
	s.mu.Lock()
	s.err = err
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

var errPacketsEnd = errors.New("worker: the supervisor closed the packet socket")

func (s *slabs) next(buf []byte) error {
	n, files, err := ipc.RecvPacket(s.sock, buf)
	if err != nil {
		return err
	}
	if n == 0 {
		return errPacketsEnd
	}
	p, err := protocol.ParseSlabPacket(buf[:n], len(files))
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return err
	}
	var r *shm.Region
	if p.Op != protocol.SlabUnmap {
		if r, err = shm.Open(files[0], p.Op == protocol.SlabMapRW); err != nil {
			files[0].Close()
			return fmt.Errorf("worker: slab %d: %w", p.Slab, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[p.Slab]; old != nil {
		old.Close()
		delete(s.m, p.Slab)
	}
	if r != nil {
		s.m[p.Slab] = r
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// region returns slab id's mapping, waiting for it to arrive.
func (s *slabs) region(ctx context.Context, id uint32) (*shm.Region, error) {
	for {
		s.mu.Lock()
		r, err, wait := s.m[id], s.err, s.changed
		s.mu.Unlock()
		switch {
		case r != nil:
			return r, nil
		case err != nil:
			return nil, fmt.Errorf("worker: slab %d is not mapped: %w", id, err)
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("worker: waiting for slab %d: %w", id, ctx.Err())
		}
	}
}

// close ends the reader (shutdown wakes its recvmsg) and, if unmap,
// unmaps every slab: no process may use them any more.
func (s *slabs) close(unmap bool) {
	unix.Shutdown(int(s.sock.Fd()), unix.SHUT_RDWR)
	<-s.done
	s.sock.Close()
	if !unmap {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.m {
		r.Close()
		delete(s.m, id)
	}
}
