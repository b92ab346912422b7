package ipc

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// Pair returns the two ends of a connected stream socketpair, both
// close-on-exec. The supervisor keeps one and hands the other to a worker
// as an inherited file (exec.Cmd.ExtraFiles clears close-on-exec on the
// child's copy only). There is no path on disk: no other process can
// connect to it or pose as the worker.
func Pair() (local, remote *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ipc: socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "theus-pair-local"), os.NewFile(uintptr(fds[1]), "theus-pair-remote"), nil
}

// FileConn returns a Conn over the socket f. It dups f's descriptor, so
// the caller closes f when it no longer needs it.
func FileConn(f *os.File, o Options) (*Conn, error) {
	if o.Blocking {
		o.defaults()
		b, err := newBlockingFD(f, o.WriteTimeout) // dups: the caller still closes f
		if err != nil {
			return nil, err
		}
		return newConn(nil, b, b, o), nil
	}
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("ipc: %s: %w", f.Name(), err)
	}
	return NewConn(nc, o), nil
}
