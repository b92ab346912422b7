package ipc

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/theus-run/theus/protocol"
)

// DefaultWriteTimeout bounds one write to a peer: a peer that stops
// reading for this long is cut off.
const DefaultWriteTimeout = 10 * time.Second

// ErrClosed is returned by Send on a closed Conn.
var ErrClosed = errors.New("ipc: connection closed")

// Conn carries protocol frames over a stream socket. Send is safe for
// concurrent use and batches: while one caller writes, others append their
// frames to the next write, so n concurrent senders cost about one system
// call, not n. Recv must be called from one goroutine at a time (the
// connection's reader). Close unblocks both.
type Conn struct {
	nc           net.Conn    // the netpoller transport, or nil
	bfd          *blockingFD // the blocking transport, or nil
	fr           *protocol.Reader
	maxFrame     int
	writeTimeout time.Duration

	mu      sync.Mutex
	pending []byte // frames waiting for the writer
	spare   []byte // the last written buffer, reused
	writing bool   // a sender is writing; others only append
	err     error  // sticky: the first write error, or ErrClosed
}

// Options tune a Conn; the zero value means the defaults.
type Options struct {
	MaxFrame     int           // default protocol.DefaultMaxFrame, both ways
	WriteTimeout time.Duration // default DefaultWriteTimeout
	// Blocking makes FileConn use blocking system calls instead of the
	// netpoller: lower latency, one OS thread per blocked reader.
	Blocking bool
}

func (o *Options) defaults() {
	if o.MaxFrame <= 0 {
		o.MaxFrame = protocol.DefaultMaxFrame
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
}

// NewConn wraps nc. The Conn owns nc from then on.
func NewConn(nc net.Conn, o Options) *Conn {
	o.defaults()
	return &Conn{nc: nc, fr: protocol.NewReader(nc, o.MaxFrame), maxFrame: o.MaxFrame, writeTimeout: o.WriteTimeout}
}

// Recv reads and decodes the next message. Errors: io.EOF at a clean end,
// protocol.ErrFrameTooLarge, a *protocol.Error (code bad_frame) for bytes
// that are not a message, or the socket's error. After any error but a
// bad_frame the stream is unusable.
func (c *Conn) Recv() (protocol.Message, error) {
	return c.fr.ReadMessage()
}

// SetReadDeadline sets the deadline of the next Recv calls.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.bfd != nil {
		return c.bfd.setReadDeadline(t)
	}
	return c.nc.SetReadDeadline(t)
}

// Send queues m and returns once it is written or handed to the sender
// that is writing. A nil error does not mean the peer read it; a write
// error is returned by this or a later Send, and closes the Conn.
func (c *Conn) Send(m protocol.Message) error {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	n := len(c.pending)
	var err error
	c.pending, err = protocol.AppendFrame(c.pending, m)
	if size := len(c.pending) - n - 4; err == nil && size > c.maxFrame {
		c.pending = c.pending[:n]
		err = fmt.Errorf("ipc: send %s: %d bytes, limit %d: %w", m.Kind(), size, c.maxFrame, protocol.ErrFrameTooLarge)
	}
	if err != nil || c.writing {
		c.mu.Unlock()
		return err
	}
	c.writing = true
	for len(c.pending) > 0 && c.err == nil {
		buf := c.pending
		c.pending = c.spare[:0]
		c.mu.Unlock()
		werr := c.write(buf)
		c.mu.Lock()
		if cap(buf) <= 1<<20 {
			c.spare = buf[:0]
		} else {
			c.spare = nil
		}
		if werr != nil && c.err == nil {
			c.err = werr
		}
	}
	c.writing = false
	err = c.err
	c.mu.Unlock()
	if err != nil && !errors.Is(err, ErrClosed) {
		c.closeTransport()
	}
	return err
}

func (c *Conn) closeTransport() error {
	if c.bfd != nil {
		return c.bfd.Close()
	}
	return c.nc.Close()
}

func (c *Conn) write(b []byte) error {
	if c.bfd != nil {
		_, err := c.bfd.Write(b)
		return err
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
		return fmt.Errorf("ipc: write: %w", err)
	}
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("ipc: write: %w", err)
	}
	return nil
}

// Close closes the connection; a blocked Recv or Send returns.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = ErrClosed
	}
	c.mu.Unlock()
	return c.closeTransport()
}

// Raw returns the underlying connection (nil for a blocking Conn), for
// peer credentials and tests.
func (c *Conn) Raw() net.Conn { return c.nc }
