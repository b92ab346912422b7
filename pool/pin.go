package pool

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Plugin is a worker binary, its arguments, and optionally the checksum
// it is pinned to.
type Plugin struct {
	Command []string // the binary (an absolute path) and its arguments
	// Pin, when set, is the hex SHA-256 the binary must have. The pool
	// then reads the binary once at Start, checks it, and keeps the bytes
	// it checked in a sealed memfd: every worker, restarts included, is
	// executed from that copy, so replacing or deleting the file on disk
	// has no effect until the pool is started again. An unpinned binary
	// is executed from its path at every start.
	Pin string
}

// ErrPinMismatch is returned by Start when a pinned binary does not have
// its checksum.
var ErrPinMismatch = errors.New("pool: plugin checksum mismatch")

// ParsePlugin parses a --plugin value, PATH or PATH@sha256:HEX, into a
// Plugin whose binary is an absolute path to an existing file.
func ParsePlugin(spec string) (Plugin, error) {
	path, sum, pinned := strings.Cut(spec, "@sha256:")
	if pinned {
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return Plugin{}, fmt.Errorf("plugin %s: the checksum %q is not 64 hex digits", path, sum)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Plugin{}, fmt.Errorf("plugin %s: %w", path, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return Plugin{}, fmt.Errorf("plugin %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		return Plugin{}, fmt.Errorf("plugin %s: not a regular file", path)
	}
	return Plugin{Command: []string{abs}, Pin: strings.ToLower(sum)}, nil
}

// pinBinary copies path into a memfd while hashing it, checks the hash
// against want, and seals the copy against every change. It returns the
// copy opened read-only (a file open for writing cannot be executed).
func pinBinary(path, want string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pool: pin %s: %w", path, err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("theus-plugin:"+filepath.Base(path), unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("pool: pin %s: memfd: %w", path, os.NewSyscallError("memfd_create", err))
	}
	rw := os.NewFile(uintptr(fd), "theus-plugin")
	defer rw.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(rw, h), src); err != nil {
		return nil, fmt.Errorf("pool: pin %s: copy: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(want) {
		return nil, fmt.Errorf("%w: %s has sha256 %s, want %s", ErrPinMismatch, path, got, want)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(rw.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return nil, fmt.Errorf("pool: pin %s: seal: %w", path, os.NewSyscallError("fcntl", err))
	}
	ro, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", rw.Fd()), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("pool: pin %s: reopen: %w", path, err)
	}
	return ro, nil
}
