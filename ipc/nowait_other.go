//go:build !linux

package ipc

import "golang.org/x/sys/unix"

// recvNoWait is recvfrom(2) of up to len(p) bytes with flags, which must
// include MSG_DONTWAIT (see nowait_linux.go).
func recvNoWait(fd int, p []byte, flags int) (int, error) {
	n, _, err := unix.Recvfrom(fd, p, flags)
	return n, err
}

// sendNoWait is send(2) of p with flags, which must include MSG_DONTWAIT.
func sendNoWait(fd int, p []byte, flags int) (int, error) {
	return unix.SendmsgN(fd, p, nil, nil, flags)
}
