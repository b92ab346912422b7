package ipc

import (
	"encoding/binary"
	"errors"
	"os"
	"time"

	"github.com/theus-run/theus/protocol"
	"golang.org/x/sys/unix"
)

// Serve reads messages and gives each to handle, in order, until handle
// returns false (Serve returns nil; the next Recv or Serve goes on with
// the message after it) or reading fails (Serve returns what Recv would
// have: io.EOF at a clean end, ErrClosed, a bad frame's error, ...).
// idle runs each time Serve may wait for the peer: when the messages
// read so far have all been handled. Like Recv, Serve is for the
// connection's one reader; handle and idle run on its goroutine.
//
// It is Recv in a loop, with one system call less per wait on a
// Listener's connection. There Recv waits in the netpoller, whose wait
// begins by clearing what it knew of the socket's readiness and so must
// receive once before it may sleep: a receive that finds nothing
// (EAGAIN) for each request of a client that waits for its reply. Serve
// handles the frames it receives inside that wait, and waits again
// without leaving it: a readiness event that came while a frame was
// handled is still known, so no bytes are slept through, and the
// receive comes only once the netpoller says there are bytes. The
// peer's end is another matter: one that came with the last bytes is
// seen up to endCheck late (a close with a request unanswered, a
// supervisor that died with one in flight). Frames
// that the wait's receive does not hold whole (larger than its small
// buffer, cut by a write boundary) or that do not decode are read by
// Recv, as ever, so budget, frame deadline and errors are Recv's.
func (c *Conn) Serve(handle func(protocol.Message) bool, idle func()) error {
	var k *parker
	if c.bfd != nil {
		k = c.bfd.park
	}
	viaRecv := k == nil
	for {
		if viaRecv || c.unreturned() {
			viaRecv = k == nil
			if !c.Buffered() {
				idle()
			}
			m, err := c.Recv()
			if err != nil {
				return err
			}
			if !handle(m) {
				return nil
			}
			continue
		}
		var stop bool
		var err error
		stop, viaRecv, err = c.serveWait(k, handle, idle)
		if stop || err != nil {
			return err
		}
	}
}

// unreturned reports whether the reader holds bytes read and not yet
// returned: in its frame reader's buffer, or left by Serve's receive.
func (c *Conn) unreturned() bool {
	return c.fr != nil && (c.fr.Buffered() > 0 || c.pr != nil && len(c.pr.src.pre) > 0)
}

// serveWait waits for frames and handles those its receive holds whole,
// inside one netpoller wait (serveRecv), until handle stops it, a frame
// needs Recv, or the wait ends (an error, the peer's end). It reports
// whether handle stopped it, and whether Recv must read next (what the
// receive left: the start of a frame, the end, a reset). Nothing is
// buffered on entry.
func (c *Conn) serveWait(k *parker, handle func(protocol.Message) bool, idle func()) (stop, viaRecv bool, err error) {
	if err := c.stopped(); err != nil {
		return false, false, err
	}
	idle()
	if c.pr != nil { // an idle connection holds no frame reader
		c.giveReader()
	}
	k.conn, k.handle, k.idle, k.stop, k.ended, k.nstash = c, handle, idle, false, false, 0
	if !k.enter() {
		return false, false, ErrClosed
	}
	err = k.serveRead(c)
	stop, viaRecv = k.stop, k.nstash > 0 || k.ended
	k.conn, k.handle, k.idle = nil, nil, nil
	if k.nstash > 0 {
		// The start of a frame the receive did not hold whole, or one it
		// could not decode: Recv's frame reader reads it first.
		c.takeReader()
		c.pr.src.pre = k.stashed()
	}
	if err != nil {
		return false, false, waitErr(err)
	}
	return stop, viaRecv, nil
}

// serveRead is serveWait's read, between enter and leave. On its way
// out, even if a handler panics, it leaves, and puts the caller's
// deadline back if endCheck's was set, whose passing is no error.
func (k *parker) serveRead(c *Conn) (err error) {
	k.parked.Store(true)
	defer func() {
		k.parked.Store(false)
		k.leave()
		if k.checking {
			k.checking = false
			k.uc.SetReadDeadline(c.deadline) // the caller's again
			if errors.Is(err, os.ErrDeadlineExceeded) && (c.deadline.IsZero() || time.Now().Before(c.deadline)) {
				err = nil // endCheck's: the next wait begins with a receive, which sees an end
			}
		}
	}()
	return k.rc.Read(k.serveFn)
}

// serveRecv is Serve's receive, for rc.Read: it reports whether the
// wait is over. Bytes it receives go to the stash; the whole frames at
// its front are handled there and then, and if that leaves nothing,
// the wait goes on (false) without the receive that would find
// nothing, unless the receive filled the stash: the socket may hold
// more, which no readiness event would announce, so it receives again.
// Before the wait goes on after frames were handled, idle runs, however
// the socket was found empty: by a receive short of the stash, or by
// the one after a full stash.
func (k *parker) serveRecv(fd uintptr) bool {
	c := k.conn
	handled := false // frames were handled in this call: idle before the wait
	for {
		k.receives++
		n, err := recvNoWait(int(fd), k.stash[:], unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if handled {
				k.waitAfterFrames()
			}
			return false
		case err != nil || n == 0:
			k.ended = true // the end, or a reset, which Recv's receive then sees as the end
			return true
		}
		b := k.stash[:n]
		off := 0
		for !k.stop && len(b)-off >= protocol.HeaderLen && c.stopped() == nil {
			size := binary.BigEndian.Uint32(b[off:])
			if size == 0 || uint64(size) > uint64(c.maxFrame) || uint64(size) > uint64(len(b)-off-4) {
				break // Recv reads it, waits for its rest or refuses it
			}
			end := off + 4 + int(size)
			m, err := protocol.Decode(protocol.Kind(b[off+4]), b[off+protocol.HeaderLen:end])
			if err != nil {
				break // Recv decodes it again and returns the error
			}
			off = end
			c.settleHeld(off < len(b))
			handled = true
			k.stop = !k.handle(m)
		}
		k.nstash = copy(k.stash[:], b[off:])
		if k.stop || k.nstash > 0 || c.stopped() != nil {
			return true
		}
		if n < len(k.stash) { // the socket had no more
			k.waitAfterFrames()
			return false
		}
	}
}

// waitAfterFrames readies the wait that follows a receive whose frames
// were all handled: it arms the end check (the end may have come with
// those bytes) and runs idle.
func (k *parker) waitAfterFrames() {
	if !k.checking {
		k.armCheck()
	}
	k.idle()
}

// endCheck bounds how long Serve may sleep through the peer's end. A
// receive that returns bytes says nothing of an end that came with them
// (the next receive would return 0), and the readiness event that
// announced both is spent: if nothing else comes, no event will. So a
// wait that follows such a receive has a deadline, endCheck after the
// first of them: when it passes, the wait ends and the next one begins
// with a receive, which sees the end. A connection with traffic pays a
// receive per endCheck, an idle one one in all, against one a wait.
const endCheck = 10 * time.Millisecond

// armCheck sets the deadline of endCheck on the netpoller's descriptor
// (or the caller's, if sooner), for the reader in Serve's read.
func (k *parker) armCheck() {
	k.checkAt = time.Now().Add(endCheck)
	k.checking = true
	k.setDeadline(k.conn.deadline)
}

// setDeadline sets t, the caller's read deadline, on the netpoller's
// descriptor, or endCheck's if it is armed and sooner: a handler or
// idle that sets a deadline must not undo the check. For the reader.
func (k *parker) setDeadline(t time.Time) error {
	if k.checking && (t.IsZero() || k.checkAt.Before(t)) {
		t = k.checkAt
	}
	return k.uc.SetReadDeadline(t)
}

// enter marks the reader inside Serve's read, where handlers run, unless
// the connection is closed: it reports whether it may read. Until leave,
// Close does not close the socket's netpoller descriptor (which would
// wait for the read, and so for a handler, maybe for ever: one whose
// write timed out closes the Conn itself); it shuts the socket, which
// ends the read's wait, and leave closes the descriptor.
func (k *parker) enter() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return false
	}
	k.serving = true
	return true
}

// leave ends what enter began, closing the descriptor if Close asked.
func (k *parker) leave() {
	k.mu.Lock()
	k.serving = false
	closeNow := k.closed
	k.mu.Unlock()
	if closeNow {
		k.uc.Close()
	}
}

// close closes the netpoller's descriptor now, or, while the reader is
// in Serve's read, has leave close it (see enter). The caller shut the
// socket first.
func (k *parker) close() {
	k.mu.Lock()
	k.closed = true
	serving := k.serving
	k.mu.Unlock()
	if !serving {
		k.uc.Close()
	}
}
