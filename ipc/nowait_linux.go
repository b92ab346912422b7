package ipc

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls on a socket that cannot block (MSG_DONTWAIT) are made as raw
// system calls: the Go scheduler does not count them as system calls, so
// its monitor (sysmon) never hands the calling thread's processor to
// another thread because one of them was slow to return. On a loaded
// machine the kernel often deschedules a thread inside such a call for
// longer than sysmon's tick; each such hand-off started or woke an OS
// thread and kept sysmon polling every 20 µs, together about a tenth of
// the supervisor's CPU (docs/BENCHMARKS.md, "Calls that cannot block").
// A call that would block returns EAGAIN instead, and the caller parks
// in the netpoller as before.

// recvNoWait is recvfrom(2) of up to len(p) bytes with flags, which must
// include MSG_DONTWAIT, without a source address.
func recvNoWait(fd int, p []byte, flags int) (int, error) {
	return noWait(unix.SYS_RECVFROM, fd, p, flags)
}

// sendNoWait is send(2) of p with flags, which must include MSG_DONTWAIT.
func sendNoWait(fd int, p []byte, flags int) (int, error) {
	return noWait(unix.SYS_SENDTO, fd, p, flags)
}

// noWait makes recvfrom or sendto (trap) on fd with p and flags, no
// address, as a raw system call.
func noWait(trap uintptr, fd int, p []byte, flags int) (int, error) {
	n, _, e := unix.RawSyscall6(trap, uintptr(fd), uintptr(base(p)), uintptr(len(p)), uintptr(flags), 0, 0)
	runtime.KeepAlive(p)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// noBytes is what base points an empty slice at: the kernel reads or
// writes nothing there, but wants a valid address.
var noBytes [1]byte

// base is the address of p's first byte, or of noBytes when p is empty.
func base(p []byte) unsafe.Pointer {
	if len(p) == 0 {
		return unsafe.Pointer(&noBytes[0])
	}
	return unsafe.Pointer(&p[0])
}
