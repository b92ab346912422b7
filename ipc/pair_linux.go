package ipc

import (
	"fmt"
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
