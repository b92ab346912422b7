package ring

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Doorbells: a consumer that parks can sleep on a pipe instead of a
// futex. The futex holds an OS thread, and its processor until the Go
// scheduler takes it back, for every parked reader; a pipe is read
// through the netpoller, so a parked reader is a parked goroutine, and a
// wake is one write(2), as a futex wake is one futex(2). The park word
// protocol is the same: the producer rings only when the consumer
// announced that it parks. Both sides of a pair must use doorbells or
// neither.
//
// A pipe, not an eventfd: each side holds its ends of the pipes alone
// (the consumer the read end, the producer the write end), each its own
// open file. An eventfd is one open file for both sides, whose count and
// flags either can change: a worker that made it blocking (F_SETFL) and
// full blocked the supervisor's write for ever, and one that read the
// supervisor's eventfd took the wake with which the supervisor ends its
// own wait. A side ends its own waits without the bell (see
// waiter.interrupt).

// Doorbells are one side's ends of the two doorbells of a pair: Req that
// of the request ring (the worker sleeps on it, the supervisor rings
// it), Rep that of the reply ring (the supervisor sleeps on it, the
// worker rings it).
type Doorbells struct{ Req, Rep *os.File }

// Close closes both ends.
func (d Doorbells) Close() error { return errors.Join(d.Req.Close(), d.Rep.Close()) }

// NewDoorbells makes the two doorbells of a pair, pipes: sup holds the
// supervisor's ends (the request pipe's write end, the reply pipe's read
// end), wrk the worker's (the other two). Give sup to the supervisor's
// SetDoorbells; pass wrk to the worker, whose SetDoorbells takes them as
// inherited, and close them once it started. They are made in blocking
// mode so that passing them to a child (os/exec) changes nothing, and
// SetDoorbells keeps its own copies.
func NewDoorbells() (sup, wrk Doorbells, err error) {
	var req, rep [2]int // [read end, write end]
	if err := unix.Pipe2(req[:], unix.O_CLOEXEC); err != nil {
		return sup, wrk, fmt.Errorf("ring: doorbell pipe: %w", err)
	}
	if err := unix.Pipe2(rep[:], unix.O_CLOEXEC); err != nil {
		unix.Close(req[0])
		unix.Close(req[1])
		return sup, wrk, fmt.Errorf("ring: doorbell pipe: %w", err)
	}
	sup = Doorbells{Req: os.NewFile(uintptr(req[1]), "theus-ring-req-bell"), Rep: os.NewFile(uintptr(rep[0]), "theus-ring-rep-bell")}
	wrk = Doorbells{Req: os.NewFile(uintptr(req[0]), "theus-ring-req-bell"), Rep: os.NewFile(uintptr(rep[1]), "theus-ring-rep-bell")}
	return sup, wrk, nil
}

// SetDoorbells makes this side sleep on its ring's doorbell and wake the
// peer through the other, instead of futexes. Call it before the pair is
// used, on both sides, with that side's ends of the pipes of NewDoorbells
// (the worker: as inherited): the read end of the ring it consumes, the
// write end of the ring it produces. Anything else is ErrBadLayout. It
// keeps copies of them (closed by Close); the caller still owns req and
// rep.
func (p *Pair) SetDoorbells(req, rep *os.File) error {
	own, peer := rep, req
	if p.role == Worker {
		own, peer = req, rep
	}
	ownFD, err := dupBell(own, unix.O_RDONLY)
	if err != nil {
		return err
	}
	peerFD, err := dupBell(peer, unix.O_WRONLY)
	if err != nil {
		unix.Close(ownFD)
		return err
	}
	// ownFD is non-blocking now: os.NewFile polls it.
	bell := os.NewFile(uintptr(ownFD), own.Name())
	rc, err := bell.SyscallConn()
	if err != nil {
		bell.Close()
		unix.Close(peerFD)
		return fmt.Errorf("ring: doorbell: %w", err)
	}
	w := &p.r.w
	w.bell, w.bellRC, w.bellFD, w.intr = bell, rc, ownFD, make(chan struct{}, 1)
	w.readFn = w.readBell
	w.parkFn = w.parkBell
	p.w.m.bell = peerFD
	return nil
}

// dupBell checks that f is the end of a pipe opened with access mode and
// returns a non-blocking close-on-exec copy of it. (f's own descriptor
// is read through SyscallConn: Fd would make a pollable file blocking.)
// The copy shares its open file with f only, which the caller holds.
func dupBell(f *os.File, mode int) (int, error) {
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
	link, lerr := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	fl, ferr := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if lerr != nil || ferr != nil || !strings.HasPrefix(link, "pipe:") || fl&unix.O_ACCMODE != mode {
		unix.Close(fd)
		end := "read"
		if mode == unix.O_WRONLY {
			end = "write"
		}
		return -1, fmt.Errorf("%w: doorbell %s is not the %s end of a pipe (%s)", ErrBadLayout, f.Name(), end, link)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("ring: doorbell: %w", err)
	}
	return fd, nil
}

// ringBell writes a byte to the doorbell pipe fd, waking its reader. It
// never blocks (fd is ours, non-blocking): EAGAIN means the pipe is full,
// so rung already, and EPIPE that the reader is gone. It is a raw system
// call, which the Go scheduler does not count as one: a write that the
// kernel is slow to return from (the thread descheduled in it) does not
// make sysmon hand this thread's processor to another thread.
func ringBell(fd int) {
	unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&bellByte[0])), 1)
}

// bellByte is what ringBell writes.
var bellByte = [1]byte{1}

// readBell reads the bell's rings into buf, for bellRC.Read, leaving the
// count and error in bn and berr; it reports whether the read is over
// (not EAGAIN). A raw system call, as ringBell's: the read cannot block.
func (w *waiter) readBell(fd uintptr) bool {
	w.reads++
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&w.buf[0])), uintptr(len(w.buf)))
	if e != 0 {
		w.bn, w.berr = 0, e
	} else {
		w.bn, w.berr = int(n), nil
	}
	return e != unix.EAGAIN && e != unix.EINTR
}
