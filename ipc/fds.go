package ipc

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MaxFiles bounds the descriptors one SendFiles may carry.
const MaxFiles = 16

// ErrNoFiles is returned by RecvFiles when the message carried no
// descriptors (or not as many as expected).
var ErrNoFiles = errors.New("ipc: no descriptors received")

// SendFiles sends fs over the Unix socket f by SCM_RIGHTS, with one byte
// of data (a message must carry some). The receiver gets its own
// descriptors to the same open files: access modes travel with them, so a
// file opened read-only stays read-only. Call it before the socket carries
// frames, or while nothing else reads or writes it (the handshake).
func SendFiles(sock *os.File, fs ...*os.File) error {
	if len(fs) == 0 || len(fs) > MaxFiles {
		return fmt.Errorf("ipc: send %d descriptors: want 1 to %d", len(fs), MaxFiles)
	}
	fds := make([]int, len(fs))
	for i, f := range fs {
		fds[i] = int(f.Fd())
	}
	if err := unix.Sendmsg(int(sock.Fd()), []byte{byte(len(fs))}, unix.UnixRights(fds...), nil, 0); err != nil {
		return fmt.Errorf("ipc: sendmsg: %w", err)
	}
	return nil
}

// RecvFiles receives exactly n descriptors sent by SendFiles on sock.
// Descriptors arrive close-on-exec. Extra or missing descriptors are an
// error, and whatever arrived is closed: a peer cannot make us leak them.
func RecvFiles(sock *os.File, n int) ([]*os.File, error) {
	if n <= 0 || n > MaxFiles {
		return nil, fmt.Errorf("ipc: receive %d descriptors: want 1 to %d", n, MaxFiles)
	}
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(MaxFiles*4))
	var got, oobn, flags int
	var err error
	for {
		got, oobn, flags, _, err = unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ipc: recvmsg: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("ipc: control message: %w", err)
		}
		for _, m := range msgs {
			rights, err := unix.ParseUnixRights(&m)
			if err == nil {
				fds = append(fds, rights...)
			}
		}
	}
	if got != 1 || flags&unix.MSG_CTRUNC != 0 || len(fds) != n || int(buf[0]) != n {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("%w: wanted %d, got %d (data %d bytes, flags %#x)", ErrNoFiles, n, len(fds), got, flags)
	}
	out := make([]*os.File, n)
	for i, fd := range fds {
		out[i] = os.NewFile(uintptr(fd), fmt.Sprintf("scm-rights-%d", i))
	}
	return out, nil
}
