package ipc

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// blockingFD is a socket read and written with blocking system calls,
// bypassing Go's netpoller: a reader blocked in read(2) is woken by the
// kernel directly when bytes arrive, which saves the epoll round and the
// thread hand-offs that double a round trip through the netpoller (see
// docs/PROTOCOL.md). It costs one OS thread per blocked reader, so its
// users bound their connections (the supervisor's --max-clients).
type blockingFD struct {
	fd       int
	mu       sync.RWMutex // read-held by each Read and Write; Close takes it to close fd
	closed   bool
	once     sync.Once
	deadline atomic.Int64 // Unix nanoseconds of the read deadline; 0 for none
}

// newBlockingFD returns a transport over a dup of f's descriptor; the
// caller still owns, and closes, f.
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

var errTimeout = fmt.Errorf("ipc: i/o timeout: %w", os.ErrDeadlineExceeded)

func (b *blockingFD) Read(p []byte) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0, net.ErrClosed
	}
	for {
		if err := b.armReadTimeout(); err != nil {
			return 0, err
		}
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

// setReadDeadline sets the deadline of reads (zero: none). Each read
// then waits at most what is left of it (SO_RCVTIMEO is per call: a
// peer that trickles a byte at a time would otherwise push it back).
func (b *blockingFD) setReadDeadline(t time.Time) error {
	if t.IsZero() {
		b.deadline.Store(0)
		var tv unix.Timeval
		return unix.SetsockoptTimeval(b.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
	b.deadline.Store(t.UnixNano())
	return nil
}

// armReadTimeout sets SO_RCVTIMEO to what is left of the deadline, if
// there is one.
func (b *blockingFD) armReadTimeout() error {
	dl := b.deadline.Load()
	if dl == 0 {
		return nil
	}
	d := time.Until(time.Unix(0, dl))
	if d <= 0 {
		return errTimeout
	}
	tv := unix.NsecToTimeval(max(d, time.Microsecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(b.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("ipc: read timeout: %w", err)
	}
	return nil
}

// shutdownRead wakes a blocked reader; reads return EOF from then on.
func (b *blockingFD) shutdownRead() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil
	}
	if err := unix.Shutdown(b.fd, unix.SHUT_RD); err != nil {
		return fmt.Errorf("ipc: shutdown: %w", err)
	}
	return nil
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
