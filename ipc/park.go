package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/theus-run/theus/protocol"
	"golang.org/x/sys/unix"
)

// A Listener's connections wait for bytes in Go's netpoller (recv with
// MSG_DONTWAIT, the goroutine parked until epoll says the socket is
// readable), so that thousands of idle clients cost a parked goroutine
// each, not an OS thread, and a connection between frames gives its
// frame reader (a 64 KiB buffer) back to a pool the Listener's
// connections share. With Options.Blocking they also read with blocking
// system calls while they have traffic (see blockingFD): a blocking read
// waits at most Linger, and at most BlockingReaders of the Listener's
// connections are in one at once; past either, the netpoller. Writes never block a thread:
// send with MSG_DONTWAIT, and a full socket buffer parks the writer in
// the netpoller until the write deadline.
const (
	// Linger is how long a blocking read waits before the connection
	// gives its thread back and waits in the netpoller.
	Linger = 50 * time.Millisecond
	// BlockingReaders bounds a Listener's connections in a blocking read
	// at once, and so the OS threads they hold.
	BlockingReaders = 32
)

// errIdle is returned by parker.read, with nothing read, when the
// connection's reader said it is between frames (mayIdle) and there is
// nothing to read now: the Conn gives back its read buffer and waits
// with waitReadable.
var errIdle = errors.New("ipc: connection idle")

// parker moves one connection between the blocking fast path and the
// netpoller. The socket's file description is shared by uc (registered
// with the netpoller) and blockingFD.fd, and is in blocking mode: uc is
// only used through rc with MSG_DONTWAIT, which does not block whatever
// the mode.
type parker struct {
	uc           *net.UnixConn
	rc           syscall.RawConn
	slots        chan struct{} // the Listener's: one per connection in a blocking read
	linger       time.Duration
	writeTimeout time.Duration
	mayIdle      bool        // set by the Conn between frames; cleared once bytes are read
	parked       atomic.Bool // in waitReadable, its frame reader given back

	// The reader's receive, for rc.Read: made once, with its arguments
	// and results here, since a closure per read would allocate.
	recvFn func(fd uintptr) bool
	rbuf   []byte
	rflags int
	rn     int
	rerr   error
	// stash holds what waitReadable read (the start of the next frames,
	// stash[:nstash]), which the frame reader takes first: a wait costs
	// one receive that finds the bytes, not a peek and then a read.
	stash  [stashSize]byte
	nstash int
	// gone is set, once, when a write found the peer gone (EPIPE,
	// ECONNRESET), before writeFailed shuts the reading side.
	gone atomic.Bool
	// peerDrains: writeFailed leaves the reading side open
	// (Options.PeerDrains).
	peerDrains bool
	// receives counts the receives made through the netpoller (rc.Read's
	// calls of recv), for the tests; written by the reader only.
	receives uint64
	// Serve's wait (serveRecv, through serveFn): the Conn, its handler
	// and idle hook, and how the wait ended: handle said stop, or the
	// receive found the end or a reset (ended).
	serveFn func(fd uintptr) bool
	conn    *Conn
	handle  func(protocol.Message) bool
	idle    func()
	stop    bool
	ended   bool
	// checking: endCheck's deadline, checkAt, is set on uc (armCheck).
	checking bool
	checkAt  time.Time
	// mu guards serving (the reader is in Serve's read) and closed
	// (Close ran): see enter.
	mu      sync.Mutex
	serving bool
	closed  bool
}

// stashSize is what waitReadable reads at most: a small request or
// reply whole.
const stashSize = 512

// newParker returns the parker of uc.
func newParker(uc *net.UnixConn, rc syscall.RawConn, slots chan struct{}, writeTimeout time.Duration, peerDrains bool) *parker {
	k := &parker{uc: uc, rc: rc, slots: slots, linger: Linger, writeTimeout: writeTimeout, peerDrains: peerDrains}
	k.recvFn = k.recv
	k.serveFn = k.serveRecv
	return k
}

// writeFailed is told of each failed write of b (b.mu read-held), with
// the system call's error. When the peer is gone it shuts the socket's
// reading side, which wakes the reader: it reads what the peer sent
// before it went (a Refuse saying why), then the end, even where the
// peer shut only its own reading side and keeps its end open, which no
// readiness event would tell the reader (a client's write then failed
// and its request waited for ever for the reader to end).
func (k *parker) writeFailed(b *blockingFD, err error) {
	if k.peerDrains || (err != unix.EPIPE && err != unix.ECONNRESET) {
		return
	}
	if k.gone.CompareAndSwap(false, true) {
		unix.Shutdown(b.fd, unix.SHUT_RD)
	}
}

// recv is one receive of rbuf with rflags (MSG_DONTWAIT, and more), for
// rc.Read: it reports whether the receive is over (not EAGAIN).
func (k *parker) recv(fd uintptr) bool {
	k.receives++
	k.rn, k.rerr = recvNoWait(int(fd), k.rbuf, k.rflags)
	return k.rerr != unix.EAGAIN && k.rerr != unix.EINTR
}

// receive receives into p with flags through the netpoller, leaving
// the receive's count and error in rn and rerr, and returns the
// netpoller's error (a deadline, a closed socket).
func (k *parker) receive(p []byte, flags int) error {
	k.rbuf, k.rflags = p, flags
	err := k.rc.Read(k.recvFn)
	k.rbuf = nil
	return err
}

// hybridConn wraps uc, a Listener's connection, per o.
func hybridConn(uc *net.UnixConn, slots chan struct{}, readers *sync.Pool, o Options) (*Conn, error) {
	o.defaults()
	f, err := uc.File()
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("ipc: %w", err)
	}
	b, err := newBlockingFD(f, o.WriteTimeout) // a dup in blocking mode: the mode is uc's too
	f.Close()
	if err != nil {
		uc.Close()
		return nil, err
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		b.Close()
		uc.Close()
		return nil, fmt.Errorf("ipc: %w", err)
	}
	b.park = newParker(uc, rc, slots, o.WriteTimeout, o.PeerDrains)
	c := newConn(nil, b, nil, o) // its frame reader comes from readers when it reads
	c.readers = readers
	return c, nil
}

// read reads into p: blocking, for at most linger, if a slot is free;
// else, or once linger passed, through the netpoller, or errIdle if the
// reader is between frames. b.mu is read-held.
func (k *parker) read(b *blockingFD, p []byte) (int, error) {
	select {
	case k.slots <- struct{}{}:
		n, err := b.readBlocking(p, k.linger)
		<-k.slots
		if !errors.Is(err, errLinger) {
			if n > 0 {
				k.mayIdle = false
			}
			return n, err
		}
	default:
	}
	if k.mayIdle {
		return 0, errIdle
	}
	err := k.receive(p, unix.MSG_DONTWAIT)
	n := k.rn
	if err == nil {
		err = k.rerr
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, errTimeout
	case errors.Is(err, net.ErrClosed):
		return 0, net.ErrClosed
	case err != nil:
		return 0, fmt.Errorf("ipc: read: %w", err)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// waitReadable parks the caller in the netpoller until the socket has
// bytes, or its end, to read, or the read deadline passes. It reads up
// to stashSize of those bytes (see stashed).
func (k *parker) waitReadable() error {
	k.nstash = 0
	err := k.receive(k.stash[:], unix.MSG_DONTWAIT)
	if err == nil && k.rerr == nil {
		k.nstash = k.rn
	}
	return waitErr(err) // nil for a reset (rerr) or the end: the read that follows sees the end
}

// waitErr is the error of a read's wait in the netpoller, err (nil, a
// deadline, the socket closed, or another), as the Conn's reader
// returns it.
func waitErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errTimeout
	case errors.Is(err, net.ErrClosed):
		return net.ErrClosed
	}
	return fmt.Errorf("ipc: read: %w", err)
}

// stashed returns, once, what the last waitReadable read.
func (k *parker) stashed() []byte {
	b := k.stash[:k.nstash]
	k.nstash = 0
	return b
}

// write writes p whole without blocking a thread: a full socket buffer
// parks the writer in the netpoller, for at most the write timeout.
// b.mu is read-held.
func (k *parker) write(b *blockingFD, p []byte) (int, error) {
	total := 0
	armed := false
	for total < len(p) {
		n, err := sendNoWait(b.fd, p[total:], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if err == unix.EAGAIN {
			if !armed {
				if err := k.uc.SetWriteDeadline(time.Now().Add(k.writeTimeout)); err != nil {
					return total, fmt.Errorf("ipc: write: %w", err)
				}
				armed = true
			}
			werr := k.rc.Write(func(fd uintptr) bool {
				n, err = sendNoWait(int(fd), p[total:], unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
				return err != unix.EAGAIN && err != unix.EINTR
			})
			if werr != nil {
				err = werr
			}
		}
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			return total, errTimeout
		case err != nil:
			k.writeFailed(b, err)
			return total, fmt.Errorf("ipc: write: %w", err)
		}
		total += n
	}
	return total, nil
}
