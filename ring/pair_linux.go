package ring

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/shm"
)

// Role says which side of the pair a mapping is.
type Role int

const (
	// Supervisor writes the request ring and reads the reply ring.
	Supervisor Role = iota
	// Worker reads the request ring and writes the reply ring.
	Worker
)

func (r Role) String() string {
	switch r {
	case Supervisor:
		return "supervisor"
	case Worker:
		return "worker"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Pair is one side's mapping of a ring pair.
type Pair struct {
	role   Role
	region *shm.Region
	life   life
	w      Writer
	r      Reader
	cap    int
}

// New makes a ring pair whose rings hold at least capacity bytes each
// (rounded up to a multiple of 64 and then grown to fill the region,
// whose size is a multiple of shm.Align), sealed against shrinking,
// growing and any further seal, and maps it for the supervisor. Send
// File to the worker.
func New(capacity int) (*Pair, error) {
	if capacity < MinCapacity {
		return nil, fmt.Errorf("ring: capacity %d: want at least %d", capacity, MinCapacity)
	}
	want := layout{capacity: (uint64(capacity) + 63) &^ 63}
	region, err := shm.Create("theus-ring", int64(want.size()))
	if err != nil {
		return nil, fmt.Errorf("ring: %w", err)
	}
	if _, err := unix.FcntlInt(region.File().Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL); err != nil {
		region.Close()
		return nil, fmt.Errorf("%w: ring: F_SEAL_SEAL: %w", shm.ErrUnsupported, err)
	}
	l := layout{capacity: (uint64(region.Size()) - dataOffset) / 2 &^ 63}
	mem := region.Bytes(0, region.Size())
	l.writeHeader(mem)
	return newPair(region, l, Supervisor), nil
}

// Map maps a ring pair received from the supervisor (f: the memfd that New
// made) as role. It refuses a memfd that could still be resized or
// resealed and one whose header is not a ring pair of this version. The
// layout is read once, here; nothing is read back from the header later.
// The Pair owns f from then on, also when Map fails.
func Map(f *os.File, role Role) (*Pair, error) {
	if role != Supervisor && role != Worker {
		f.Close()
		return nil, fmt.Errorf("ring: map as %v: no such role", role)
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: not a sealable memfd: %w", ErrBadLayout, err)
	}
	if seals&unix.F_SEAL_SEAL == 0 {
		f.Close()
		return nil, fmt.Errorf("%w: its seals can still change (no F_SEAL_SEAL)", ErrBadLayout)
	}
	// A regular file on tmpfs reports F_SEAL_SEAL alone: it can still be
	// truncated under the mapping.
	if resize := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW; seals&resize != resize {
		f.Close()
		return nil, fmt.Errorf("%w: it can still be resized (seals %#x)", ErrBadLayout, seals)
	}
	region, err := shm.Open(f, true)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ring: %w", err)
	}
	l, err := readHeader(region.Bytes(0, region.Size()))
	if err != nil {
		return nil, errors.Join(err, region.Close())
	}
	return newPair(region, l, role), nil
}

func newPair(region *shm.Region, l layout, role Role) *Pair {
	p := &Pair{role: role, region: region, cap: int(l.capacity)}
	req, rep := l.rings(region.Bytes(0, region.Size()))
	out, in := req, rep
	if role == Worker {
		out, in = rep, req
	}
	p.w = Writer{m: out, w: waiter{life: &p.life, word: out.prodPark}}
	p.r = Reader{m: in, w: waiter{life: &p.life, word: in.consPark}}
	return p
}

// Writer is this side's producing ring.
func (p *Pair) Writer() *Writer { return &p.w }

// Reader is this side's consuming ring.
func (p *Pair) Reader() *Reader { return &p.r }

// Capacity is the bytes of data in each ring.
func (p *Pair) Capacity() int { return p.cap }

// File is the memfd, to send to the worker. The Pair keeps owning it.
func (p *Pair) File() *os.File { return p.region.File() }

// Close interrupts this side's waits, waits for them to return, then
// unmaps the pair and closes its memfd. It is safe to call more than
// once, and concurrently with Wait, but not with Read, Write or Reserve.
func (p *Pair) Close() error {
	if p.life.closed.Swap(true) {
		return nil
	}
	p.r.w.interrupt()
	p.w.w.interrupt()
	p.life.mu.Lock()
	defer p.life.mu.Unlock()
	p.r.w.unregister()
	p.w.w.unregister()
	err := p.region.Close()
	if p.r.w.bell != nil {
		p.r.w.bell.Close()
		unix.Close(p.w.m.bell)
	}
	return err
}
