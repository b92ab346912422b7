package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/theus-run/theus/protocol"
)

// DefaultWriteTimeout bounds one write to a peer: a peer that stops
// reading for this long is cut off.
const DefaultWriteTimeout = 10 * time.Second

// ErrClosed is returned by Send and Recv on a closed Conn.
var ErrClosed = errors.New("ipc: connection closed")

// Conn carries protocol frames over a stream socket. Send is safe for
// concurrent use and batches: while one caller writes, others append their
// frames to the next write, so n concurrent senders cost about one system
// call, not n. Recv must be called from one goroutine at a time (the
// connection's reader), and so must SetReadDeadline. Close unblocks both.
type Conn struct {
	nc           net.Conn    // the netpoller transport, or nil
	bfd          *blockingFD // the blocking transport, or nil
	fr           *protocol.Reader
	maxFrame     int
	writeTimeout time.Duration

	// Owned by the reader.
	budget       *Budget
	frameTimeout time.Duration
	buf          []byte    // body buffer reused for frames not taken from budget
	deadline     time.Time // the caller's read deadline
	readClosed   atomic.Bool
	readers      *sync.Pool    // a Listener's frame readers, for its connections while idle; or nil
	pr           *pooledReader // fr's, from readers; nil while idle

	mu      sync.Mutex
	pending []byte        // frames waiting for the writer
	spare   []byte        // the last written buffer, reused
	writing bool          // a sender is writing; others only append
	err     error         // sticky: the first write error, or ErrClosed
	done    chan struct{} // closed when err is set
	// held: the last Recv left frames read and not yet returned, so the
	// reader comes back without blocking; frames given to Defer wait for
	// it (or for the next Send) and go out in one write with the others.
	held bool
	// deferred: frames given to Defer wait in pending, which settle
	// writes once none is held. Frames given to Queue are their owner's
	// to flush: settle never writes for them (the reader must not wait
	// on a write it did not ask for).
	deferred bool
}

// Options tune a Conn; the zero value means the defaults.
type Options struct {
	MaxFrame     int           // default protocol.DefaultMaxFrame, both ways
	WriteTimeout time.Duration // default DefaultWriteTimeout
	// Blocking makes FileConn use blocking system calls instead of the
	// netpoller: lower latency, one OS thread per blocked reader.
	Blocking bool
	// Budget, when set, is shared by Conns to bound the bytes they hold
	// for frames being read: a frame over SmallFrame bytes takes its
	// length from it before its body is allocated and gives it back when
	// Recv returns. Smaller frames use a buffer of their Conn's.
	Budget *Budget
	// FrameTimeout, when > 0, is how long a frame may take to arrive in
	// full once its header has, waiting for Budget included: a peer that
	// stalls inside a frame gets ErrFrameTimeout and its bytes are freed.
	// Between frames there is no deadline.
	FrameTimeout time.Duration
	// PeerDrains says that the peer may stop reading while it still
	// sends: a supervisor's drain answers what it read, then sends a
	// Refuse and closes. A write that finds the peer not reading (EPIPE,
	// ECONNRESET) then leaves this side's reading open for what is still
	// coming, and the owner shuts it (CloseRead) when it stops waiting.
	// Otherwise such a write shuts the reading side at once, which ends
	// the reader: its peer's replies after that are lost. Connections
	// made by Dial only; a Listener's ignore it.
	PeerDrains bool
}

// SmallFrame is the largest body a Conn reads into a buffer of its own,
// outside any Budget: as large as its read buffer, which it holds anyway.
const SmallFrame = 64 << 10

// ErrFrameTimeout is returned by Recv for a frame that did not arrive in
// full within Options.FrameTimeout. The stream is unusable after it.
var ErrFrameTimeout = errors.New("ipc: frame timeout")

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
	return newConn(nc, nil, nc, o)
}

func newConn(nc net.Conn, bfd *blockingFD, r io.Reader, o Options) *Conn {
	o.defaults()
	c := &Conn{
		nc: nc, bfd: bfd, maxFrame: o.MaxFrame, writeTimeout: o.WriteTimeout,
		budget: o.Budget, frameTimeout: o.FrameTimeout, done: make(chan struct{}),
	}
	if r != nil {
		c.fr = protocol.NewReader(r, o.MaxFrame)
	}
	return c
}

// Recv reads and decodes the next message. Errors: io.EOF at a clean end,
// protocol.ErrFrameTooLarge, ErrFrameTimeout, a *protocol.Error (code
// bad_frame) for bytes that are not a message, ErrClosed once Close or
// CloseRead was called (frames already read from the socket are dropped),
// or the socket's error. After any error but a bad_frame the stream is
// unusable.
func (c *Conn) Recv() (protocol.Message, error) {
	m, err := c.recv()
	c.settle()
	return m, err
}

// Buffered reports whether the next frame waits whole in the buffer,
// small enough to need no share of the read budget: the next Recv then
// returns without waiting. For the goroutine that calls Recv.
func (c *Conn) Buffered() bool { return c.fr != nil && c.fr.FrameBuffered(SmallFrame) }

// settle records, after a Recv, whether frames read wait in the buffer
// (held); once none do, it writes what Defer left pending, so that a
// deferred frame never waits for a read that may block.
func (c *Conn) settle() { c.settleHeld(c.fr != nil && c.fr.Buffered() > 0) }

// settleHeld is settle, told whether frames read wait to be returned.
func (c *Conn) settleHeld(held bool) {
	c.mu.Lock()
	c.held = held
	if held || c.writing || !c.deferred || len(c.pending) == 0 || c.err != nil {
		c.mu.Unlock()
		return
	}
	c.flushLocked()
}

func (c *Conn) recv() (protocol.Message, error) {
	if err := c.stopped(); err != nil {
		return nil, err
	}
	k, n, err := c.header()
	if err != nil {
		return nil, err
	}
	if n <= SmallFrame && c.fr.Buffered() >= n { // the common case: no system call, no deadline
		body := c.ownBuf(n)
		if err := c.fr.Body(body); err != nil {
			return nil, err
		}
		return protocol.Decode(k, body)
	}
	var deadline time.Time
	if c.frameTimeout > 0 {
		deadline = time.Now().Add(c.frameTimeout)
	}
	var body []byte
	if n > SmallFrame && c.budget != nil {
		if err := c.budget.acquire(int64(n), deadline, c.done); err != nil {
			return nil, err
		}
		defer c.budget.release(int64(n))
		body = make([]byte, n) // garbage once decoded: nothing keeps a large buffer
	} else {
		body = c.ownBuf(n)
	}
	if !deadline.IsZero() && c.fr.Buffered() < n && (c.deadline.IsZero() || deadline.Before(c.deadline)) {
		if err := c.setReadDeadline(deadline); err != nil {
			return nil, err
		}
		defer c.setReadDeadline(c.deadline)
	} else {
		deadline = time.Time{} // the caller's deadline, if any, applies
	}
	if err := c.fr.Body(body); err != nil {
		if !deadline.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("ipc: %s frame of %d bytes still incomplete %s after its header: %w", k, n, c.frameTimeout, ErrFrameTimeout)
		}
		return nil, err
	}
	return protocol.Decode(k, body)
}

// header reads the next frame's header. A Listener's connection that
// has nothing to read waits for bytes in the netpoller (park.go).
func (c *Conn) header() (protocol.Kind, int, error) {
	var k *parker
	if c.bfd != nil {
		k = c.bfd.park
	}
	if k == nil {
		return c.fr.Header()
	}
	if c.pr == nil {
		c.takeReader()
	}
	if c.fr.Buffered() > 0 || len(c.pr.src.pre) > 0 { // pre: what Serve's receive left
		return c.fr.Header()
	}
	k.mayIdle = true
	kind, n, err := c.fr.Header()
	if !errors.Is(err, errIdle) {
		return kind, n, err
	}
	// Nothing read, nothing buffered: the reader's 64 KiB go back to the
	// pool while the connection waits.
	k.mayIdle = false
	c.giveReader()
	k.parked.Store(true)
	err = k.waitReadable()
	k.parked.Store(false)
	if err != nil {
		return 0, 0, err
	}
	c.takeReader()
	c.pr.src.pre = k.stashed() // what waitReadable read: the frame reader reads it first
	return c.fr.Header()
}

// pooledReader is a frame reader that a Listener's connections share
// while idle: it reads from whichever connection holds it.
type pooledReader struct {
	fr  *protocol.Reader
	src swapReader
}

// swapReader reads pre, then r.
type swapReader struct {
	pre []byte
	r   io.Reader
}

func (s *swapReader) Read(p []byte) (int, error) {
	if len(s.pre) > 0 {
		n := copy(p, s.pre)
		s.pre = s.pre[n:]
		return n, nil
	}
	return s.r.Read(p)
}

// newReaderPool returns a pool of frame readers of frames up to max bytes.
func newReaderPool(max int) *sync.Pool {
	return &sync.Pool{New: func() any {
		pr := &pooledReader{}
		pr.fr = protocol.NewReader(&pr.src, max)
		return pr
	}}
}

// giveReader gives c's frame reader, which holds nothing, back to the
// pool, while c waits.
func (c *Conn) giveReader() {
	c.pr.src.r, c.pr.src.pre = nil, nil
	c.readers.Put(c.pr)
	c.pr, c.fr = nil, nil
}

// takeReader takes a frame reader from the pool for c.
func (c *Conn) takeReader() {
	c.pr = c.readers.Get().(*pooledReader)
	c.pr.src.r = c.bfd
	c.fr = c.pr.fr
}

// ownBuf returns the Conn's own body buffer, n bytes long.
func (c *Conn) ownBuf(n int) []byte {
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	return c.buf[:n]
}

// stopped returns ErrClosed once the Conn or its reading side is
// closed. (After a failed write, frames already read are still returned:
// a client reads the Refuse that says why its server went.)
func (c *Conn) stopped() error {
	if c.readClosed.Load() {
		return ErrClosed
	}
	return nil
}

// SetReadDeadline sets the deadline of the next Recv calls (zero: none).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return c.setReadDeadline(t)
}

func (c *Conn) setReadDeadline(t time.Time) error {
	if c.bfd != nil {
		return c.bfd.setReadDeadline(t)
	}
	return c.nc.SetReadDeadline(t)
}

// CloseRead ends the reading side only: a Recv blocked in a read returns,
// later ones return ErrClosed, and Send still works, for a last word
// before Close. The peer's writes fail from then on.
func (c *Conn) CloseRead() error {
	c.readClosed.Store(true)
	if c.bfd != nil {
		return c.bfd.shutdownRead()
	}
	if rc, ok := c.nc.(interface{ CloseRead() error }); ok {
		return rc.CloseRead()
	}
	return fmt.Errorf("ipc: close read: %w", errors.ErrUnsupported)
}

// setErr records the Conn's first error; c.mu is held.
func (c *Conn) setErr(err error) {
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

// Send queues m and returns once it is written or handed to the sender
// that is writing. A nil error does not mean the peer read it; a write
// error is returned by this or a later Send, and closes the Conn.
func (c *Conn) Send(m protocol.Message) error { return c.send(sendNow, m) }

// Defer is Send for a reply that may share a write with the replies to
// the frames the reader has read and not yet returned: while there are
// such frames, m waits in the queue and goes out with the next write,
// which comes at the latest when the reader has returned them all (so a
// reply never waits for a read that may block). Otherwise it is Send.
// A peer that pipelines gets one write for a batch of replies; a lone
// request's reply is written at once. Only for a Conn whose reader
// keeps reading while replies are pending (a worker's connection).
func (c *Conn) Defer(m protocol.Message) error { return c.send(sendDeferred, m) }

// Coalesce is Send for a sender that expects other frames to follow at
// once (its peer pipelines: other requests are in flight, whose replies
// or next requests are being computed by goroutines that can run now).
// It lets those goroutines run before it writes, so that what they send
// meanwhile shares its write: a batch of n frames costs one system call,
// not n. Where nothing else can run it writes at once; a sender that
// expects nothing to follow (a lone request) uses Send, which never
// yields.
func (c *Conn) Coalesce(m protocol.Message) error { return c.send(sendCoalesce, m) }

// Queue is Send that never writes: m waits in the queue for the writer
// at work now, if any, else for the caller's FlushNoWait or Flush. It
// is for a goroutine that must never wait for the peer (one that
// completes many connections' requests in turn): it queues the replies
// of a batch, then flushes each connection once.
func (c *Conn) Queue(m protocol.Message) error { return c.send(sendQueued, m) }

// Flush writes what Queue left, unless another sender is writing it
// already; it may wait for the peer, up to the write timeout.
func (c *Conn) Flush() error {
	c.mu.Lock()
	if c.writing || len(c.pending) == 0 || c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	return c.flushLocked()
}

// FlushNoWait is Flush that never waits: it writes what the socket
// takes now, and reports false when some is left for which nobody is
// writing (the socket is full, or its transport cannot write without
// waiting). The caller must then call Flush from a goroutine that may
// wait. An error is the Conn's, as Send returns it.
func (c *Conn) FlushNoWait() (bool, error) {
	c.mu.Lock()
	if c.writing || len(c.pending) == 0 || c.err != nil {
		err := c.err
		c.mu.Unlock()
		return true, err
	}
	if c.bfd == nil || c.bfd.park == nil {
		c.mu.Unlock()
		return false, nil
	}
	c.writing = true
	for len(c.pending) > 0 && c.err == nil {
		buf := c.pending
		c.pending = c.spare[:0]
		c.mu.Unlock()
		n, werr := c.bfd.writeNoWait(buf)
		c.mu.Lock()
		if werr == errWouldBlock {
			// What is left goes first, before what was queued since.
			rest := append(buf[:0:0], buf[n:]...)
			c.pending = append(rest, c.pending...)
			c.writing = false
			c.mu.Unlock()
			return false, nil
		}
		c.written(buf, werr)
	}
	c.writing = false
	err := c.err
	c.mu.Unlock()
	if err != nil && !errors.Is(err, ErrClosed) && !peerGone(err) {
		c.closeTransport()
	}
	return true, err
}

// SendBatch is Send for several messages, which go in order, with no
// other sender's frame between them, and in one write when they fit in
// it. When one of them is refused (too large, or not encodable) none is
// sent and the Conn stays usable.
func (c *Conn) SendBatch(ms ...protocol.Message) error { return c.send(sendNow, ms...) }

// sendMode says when a frame queued by send is written.
type sendMode uint8

const (
	sendNow      sendMode = iota // at once, or by the sender writing now
	sendDeferred                 // Defer: after the reader's held frames
	sendCoalesce                 // Coalesce: after the runnable goroutines ran
	sendQueued                   // Queue: by the writer now, or Flush
)

func (c *Conn) send(mode sendMode, ms ...protocol.Message) error {
	if len(ms) == 0 {
		return nil
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	start := len(c.pending)
	var err error
	for _, m := range ms {
		n := len(c.pending)
		c.pending, err = protocol.AppendFrame(c.pending, m)
		if size := len(c.pending) - n - 4; err == nil && size > c.maxFrame {
			err = fmt.Errorf("ipc: send %s: %d bytes, limit %d: %w", m.Kind(), size, c.maxFrame, protocol.ErrFrameTooLarge)
		}
		if err != nil {
			c.pending = c.pending[:start]
			break
		}
	}
	if err == nil && mode == sendDeferred && c.held && !c.writing {
		c.deferred = true // settle writes it once the held frames are returned
	}
	if err != nil || c.writing || (mode == sendDeferred && c.held) || mode == sendQueued {
		c.mu.Unlock()
		return err
	}
	if mode == sendCoalesce {
		// Be the writer, so that senders meanwhile only append, and let
		// the goroutines runnable now run first.
		c.writing = true
		c.mu.Unlock()
		runtime.Gosched()
		c.mu.Lock()
	}
	return c.flushLocked()
}

// flushLocked makes the caller the writer: it writes what is pending,
// and what others append meanwhile, until nothing is. c.mu is held on
// entry and released on return.
func (c *Conn) flushLocked() error {
	c.writing = true
	c.deferred = false // what Defer left goes out now
	for len(c.pending) > 0 && c.err == nil {
		buf := c.pending
		c.pending = c.spare[:0]
		c.mu.Unlock()
		werr := c.write(buf)
		c.mu.Lock()
		c.written(buf, werr)
	}
	c.writing = false
	err := c.err
	c.mu.Unlock()
	if err != nil && !errors.Is(err, ErrClosed) && !peerGone(err) {
		c.closeTransport() // unblocks the reader: the peer may be alive and stuck
	}
	return err
}

// written keeps buf, written with werr, as the next spare buffer (unless
// it is large) and records werr (c.mu held).
func (c *Conn) written(buf []byte, werr error) {
	if cap(buf) <= 1<<20 {
		c.spare = buf[:0]
	} else {
		c.spare = nil
	}
	if werr != nil {
		c.setErr(werr)
	}
}

// peerGone reports whether a write failed because the peer closed its end
// (EPIPE, ECONNRESET). The transport then stays open for the reader: what
// the peer sent before it closed (a Refuse saying why) is still read,
// then the end. Closing it here raced the reader and lost those frames.
// The Conn's owner closes it, as always.
func peerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
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

// Close closes the connection; a blocked Recv or Send returns, and so
// does every later one, even with frames read and not yet returned.
func (c *Conn) Close() error {
	c.readClosed.Store(true)
	c.mu.Lock()
	c.setErr(ErrClosed)
	c.mu.Unlock()
	return c.closeTransport()
}

// Raw returns the underlying connection (nil for a blocking Conn), for
// peer credentials and tests.
func (c *Conn) Raw() net.Conn { return c.nc }
