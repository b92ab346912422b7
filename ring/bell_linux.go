package ring

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Doorbells: a consumer that parks can sleep on an eventfd instead of a
// futex. The futex holds an OS thread, and its processor until the Go
// scheduler takes it back, for every parked reader; an eventfd is read
// through the netpoller, so a parked reader is a parked goroutine, and a
// wake is one write(2), as a futex wake is one futex(2). The park word
// protocol is the same: the producer rings only when the consumer
// announced that it parks. Both sides of a pair must use the same two
// eventfds (one per ring) or none.

// NewDoorbells makes the two eventfds of a pair: req wakes the consumer
// of the request ring (the worker), rep that of the reply ring (the
// supervisor). Give both to SetDoorbells on each side; they are made in
// blocking mode so that passing them to a child (os/exec) changes
// nothing, and SetDoorbells keeps its own copies.
func NewDoorbells() (req, rep *os.File, err error) {
	a, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("ring: eventfd: %w", err)
	}
	b, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(a)
		return nil, nil, fmt.Errorf("ring: eventfd: %w", err)
	}
	return os.NewFile(uintptr(a), "theus-ring-req-bell"), os.NewFile(uintptr(b), "theus-ring-rep-bell"), nil
}

// SetDoorbells makes this side sleep on its ring's eventfd and wake the
// peer through the other, instead of futexes. Call it before the pair is
// used, on both sides, with the eventfds of NewDoorbells (the worker: as
// inherited). It keeps copies of them (closed by Close); the caller
// still owns req and rep.
func (p *Pair) SetDoorbells(req, rep *os.File) error {
	own, peer := rep, req
	if p.role == Worker {
		own, peer = req, rep
	}
	ownFD, err := dupBell(own)
	if err != nil {
		return err
	}
	peerFD, err := dupBell(peer)
	if err != nil {
		unix.Close(ownFD)
		return err
	}
	// ownFD is non-blocking now: os.NewFile polls it.
	p.r.w.bell, p.r.w.bellFD = os.NewFile(uintptr(ownFD), own.Name()), ownFD
	p.w.m.bell = peerFD
	return nil
}

// dupBell checks that f is an eventfd and returns a non-blocking
// close-on-exec copy of it. (f's own descriptor is read through
// SyscallConn: Fd would make a pollable file blocking.)
func dupBell(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("ring: doorbell: %w", err)
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 3) }); err != nil {
		return -1, fmt.Errorf("ring: doorbell: %w", err)
	}
	if derr != nil {
		return -1, fmt.Errorf("ring: doorbell: dup: %w", derr)
	}
	if link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)); err != nil || link != "anon_inode:[eventfd]" {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: doorbell %s is not an eventfd (%s)", ErrBadLayout, f.Name(), link)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("ring: doorbell: %w", err)
	}
	return fd, nil
}

// ringBell adds one to eventfd fd, waking its reader.
func ringBell(fd int) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	unix.Write(fd, b[:]) // EAGAIN only when the count is about to overflow: it is rung already
}
