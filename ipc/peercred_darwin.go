package ipc

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns the uid and pid of the process at the other end of c
// (LOCAL_PEERCRED and LOCAL_PEERPID).
func peerCred(c *net.UnixConn) (uid, pid int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, -1, fmt.Errorf("ipc: peer credentials: %w", err)
	}
	var cred *unix.Xucred
	var cerr error
	pid = -1
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if p, err := unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID); err == nil {
			pid = p
		}
	}); err != nil {
		return -1, -1, fmt.Errorf("ipc: peer credentials: %w", err)
	}
	if cerr != nil {
		return -1, -1, fmt.Errorf("ipc: peer credentials: %w", cerr)
	}
	return int(cred.Uid), pid, nil
}
