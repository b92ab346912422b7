package ipc

import (
	"errors"
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
// docs/PROTOCOL.md). It costs one OS thread per blocked reader; a
// Listener's connections bound that with a parker (park.go): past a
// short wait, or past a number of blocked readers, they wait in the
// netpoller instead, holding no thread.
type blockingFD struct {
	fd       int
	mu       sync.RWMutex // read-held by each Read and Write; Close takes it to close fd
	closed   bool
	once     sync.Once
	deadline atomic.Int64 // Unix nanoseconds of the read deadline; 0 for none
	rcvtimeo int64        // SO_RCVTIMEO now set on fd, in ns; owned by the reader
	park     *parker      // nil: always block
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
	if b.park != nil {
		return b.park.read(b, p)
	}
	return b.readBlocking(p, 0)
}

// errLinger is returned by readBlocking when linger passed with nothing
// read (and the read deadline, if any, has not).
var errLinger = errors.New("ipc: nothing to read within the linger")

// readBlocking reads with read(2), waiting at most linger (0: no limit)
// and at most until the read deadline.
func (b *blockingFD) readBlocking(p []byte, linger time.Duration) (int, error) {
	for {
		if err := b.armReadTimeout(linger); err != nil {
			return 0, err
		}
		n, err := unix.Read(b.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN: // SO_RCVTIMEO passed
			if dl := b.deadline.Load(); dl != 0 && time.Now().UnixNano() >= dl || linger == 0 {
				return 0, errTimeout
			}
			return 0, errLinger
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
	if b.park != nil {
		return b.park.write(b, p)
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

// errWouldBlock is writeNoWait's: the socket takes no more now.
var errWouldBlock = errors.New("ipc: the write would wait")

// writeNoWait writes as much of p as the socket takes now, without
// waiting: errWouldBlock (with what was written) when it takes no more.
// Only for a socket with a parker.
func (b *blockingFD) writeNoWait(p []byte) (int, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return 0, net.ErrClosed
	}
	total := 0
	for total < len(p) {
		n, err := sendNoWait(b.fd, p[total:], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return total, errWouldBlock
		case err != nil:
			if b.park != nil {
				b.park.writeFailed(b, err)
			}
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
	} else {
		b.deadline.Store(t.UnixNano())
	}
	if b.park != nil {
		return b.park.setDeadline(t)
	}
	return nil
}

// armReadTimeout sets SO_RCVTIMEO to what is left of the deadline, or
// to linger if that is sooner (0: neither, no timeout). It makes a
// system call only when the value changes: with no deadline, never.
func (b *blockingFD) armReadTimeout(linger time.Duration) error {
	want := linger
	if dl := b.deadline.Load(); dl != 0 {
		d := time.Until(time.Unix(0, dl))
		if d <= 0 {
			return errTimeout
		}
		if want == 0 || d < want {
			want = max(d, time.Microsecond)
		}
	}
	if int64(want) == b.rcvtimeo {
		return nil
	}
	tv := unix.NsecToTimeval(want.Nanoseconds())
	if err := unix.SetsockoptTimeval(b.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("ipc: read timeout: %w", err)
	}
	b.rcvtimeo = int64(want)
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
		unix.Shutdown(b.fd, unix.SHUT_RDWR) // wakes readers and writers, blocked or parked
		if b.park != nil {
			b.park.close()
		}
		b.mu.Lock()
		b.closed = true
		unix.Close(b.fd)
		b.mu.Unlock()
	})
	return nil
}
