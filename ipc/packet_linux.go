package ipc

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// PacketPair returns the two ends of a connected SOCK_SEQPACKET
// socketpair, both close-on-exec. Each message on it is delivered whole
// with the descriptors sent with it: the channel for descriptors that
// must travel after a stream socket already carries frames (whose
// read(2)s would drop them). The local end is non-blocking, for
// SendPacket; the remote end blocks, for RecvPacket.
func PacketPair() (local, remote *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ipc: socketpair: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("ipc: socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "theus-packet-local"), os.NewFile(uintptr(fds[1]), "theus-packet-remote"), nil
}

// ErrPeerSlow is returned by SendPacket when the peer's receive queue is
// full: it is not reading its packets.
var ErrPeerSlow = errors.New("ipc: peer is not reading its packets")

// MaxFiles bounds the descriptors one packet may carry.
const MaxFiles = 16

// SendPacket sends data and fs (at most MaxFiles) as one message without
// blocking: a full queue gives ErrPeerSlow.
func SendPacket(sock *os.File, data []byte, fs ...*os.File) error {
	if len(data) == 0 || len(fs) > MaxFiles {
		return fmt.Errorf("ipc: send packet of %d bytes with %d descriptors: want data and at most %d", len(data), len(fs), MaxFiles)
	}
	var oob []byte
	if len(fs) > 0 {
		fds := make([]int, len(fs))
		for i, f := range fs {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	for {
		err := unix.Sendmsg(int(sock.Fd()), data, oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return ErrPeerSlow
		}
		return fmt.Errorf("ipc: sendmsg: %w", err)
	}
}

// RecvPacket blocks for one message of at most len(buf) bytes and at most
// MaxFiles descriptors (close-on-exec). A longer message or more
// descriptors is an error, and every descriptor received is closed. At the
// peer's end it returns 0 and no error.
func RecvPacket(sock *os.File, buf []byte) (int, []*os.File, error) {
	oob := make([]byte, unix.CmsgSpace(MaxFiles*4))
	var n, oobn, flags int
	var err error
	for {
		n, oobn, flags, _, err = unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, nil, fmt.Errorf("ipc: recvmsg: %w", err)
	}
	var fds []int
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil {
			for _, m := range msgs {
				if rights, err := unix.ParseUnixRights(&m); err == nil {
					fds = append(fds, rights...)
				}
			}
		}
		if perr != nil {
			err = fmt.Errorf("ipc: control message: %w", perr)
		}
	}
	if err == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		err = fmt.Errorf("ipc: packet truncated (flags %#x): over %d bytes or %d descriptors", flags, len(buf), MaxFiles)
	}
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return 0, nil, err
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("scm-rights-%d", i))
	}
	return n, files, nil
}
