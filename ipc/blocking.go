package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// blockingFD is a socket read and written with blocking system calls,
// bypassing Go's netpoller: a reader blocked in read(2) is woken by the
// kernel directly when bytes arrive, which saves the epoll round and the
// thread hand-offs that double a round trip through the netpoller (see
// docs/PROTOCOL.md). It costs one OS thread per blocked reader, so it is
// used for the few long-lived worker connections only.
type blockingFD struct {
	fd     int
	mu     sync.RWMutex // read-held by each Read and Write; Close takes it to close fd
	closed bool
	once   sync.Once
}

// newBlockingFD takes ownership of f's descriptor (f is closed).
func newBlockingFD(f *os.File, writeTimeout time.Duration) (*blockingFD, error) {
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("ipc: dup: %w", err)
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ipc: set blocking: %w", err)
	}
	tv := unix.NsecToTimeval(writeTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ipc: send timeout: %w", err)
	}
	return &blockingFD{fd: fd}, nil
}

var errTimeout = errors.New("ipc: i/o timeout")

func (b *blockingFD) Read(p []byte) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0, net.ErrClosed
	}
	for {
		n, err := unix.Read(b.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, errTimeout // SO_RCVTIMEO passed
		case err != nil:
			return 0, fmt.Errorf("ipc: read: %w", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (b *blockingFD) Write(p []byte) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0, net.ErrClosed
	}
	total := 0
	for total < len(p) {
		n, err := unix.Write(b.fd, p[total:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return total, errTimeout
		case err != nil:
			return total, fmt.Errorf("ipc: write: %w", err)
		}
		total += n
	}
	return total, nil
}

// setReadDeadline maps a deadline to SO_RCVTIMEO (zero: none).
func (b *blockingFD) setReadDeadline(t time.Time) error {
	var tv unix.Timeval
	if !t.IsZero() {
		d := time.Until(t)
		if d < time.Microsecond {
			d = time.Microsecond
		}
		tv = unix.NsecToTimeval(d.Nanoseconds())
	}
	return unix.SetsockoptTimeval(b.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

// Close wakes a blocked reader (shutdown), waits for reads and writes in
// progress to return, and only then closes the descriptor, so a number
// reused by another file is never read or written.
func (b *blockingFD) Close() error {
	b.once.Do(func() {
		unix.Shutdown(b.fd, unix.SHUT_RDWR)
		b.mu.Lock()
		b.closed = true
		unix.Close(b.fd)
		b.mu.Unlock()
	})
	return nil
}
