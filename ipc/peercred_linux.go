package ipc

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns the uid and pid of the process at the other end of c
// (SO_PEERCRED: as they were when it connected).
func peerCred(c *net.UnixConn) (uid, pid int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, -1, fmt.Errorf("ipc: peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, -1, fmt.Errorf("ipc: peer credentials: %w", err)
	}
	if cerr != nil {
		return -1, -1, fmt.Errorf("ipc: peer credentials: %w", cerr)
	}
	return int(cred.Uid), int(cred.Pid), nil
}
