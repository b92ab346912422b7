package durable

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsafeDir: the state directory is not this user's, or others may
// write in it (and so rename, replace or plant files there).
var ErrUnsafeDir = errors.New("durable: unsafe state directory")

// lockTimeout is how long a lock is waited for: a supervisor that is
// stopping releases its own within that.
const lockTimeout = time.Second

// fileID names a file by what it is, not by the name it has now: two
// names of one file (a hard link, a symlink, ./x/../theus.db) have one.
type fileID struct{ dev, ino uint64 }

func idOf(fi os.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{uint64(st.Dev), st.Ino}
}

// openDir makes dir (mode 0700) if it is absent and checks that it is
// safe: a directory owned by this user that no one else may write in.
func openDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("durable: state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("durable: state directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir() || !ok:
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafeDir, dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%w: %s is owned by uid %d, not %d", ErrUnsafeDir, dir, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%w: %s has mode %04o: others may replace the state file in it (chmod go-w %s)", ErrUnsafeDir, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// dirLock is an exclusive flock on the state directory itself, held by
// the one process that may write its state file. It is on the
// directory, not on the file: a rename over theus.db gives the name a
// new file with no lock of its own, but cannot give the directory a new
// inode (a directory that holds files cannot be renamed over).
type dirLock struct{ f *os.File }

// lockDir takes dir's lock, waiting up to lockTimeout; ErrLocked if
// another process holds it.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("durable: state directory: %w", err)
	}
	if err := flock(f, unix.LOCK_EX); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: state directory %s is locked by another supervisor", ErrLocked, dir)
		}
		return nil, fmt.Errorf("durable: lock %s: %w", dir, err)
	}
	return &dirLock{f}, nil
}

// release lets another process take the lock.
func (l *dirLock) release() error { return l.f.Close() }

// flock takes how (LOCK_EX or LOCK_SH) on f, retrying for lockTimeout
// while another process holds a conflicting lock (then EWOULDBLOCK).
func flock(f *os.File, how int) error {
	deadline := time.Now().Add(lockTimeout)
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// heldByAnother reports whether some open file description other than
// this one holds an exclusive lock on f's file: a journal writes it.
func heldByAnother(f *os.File) bool {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err == nil {
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
		}
		return errors.Is(err, unix.EWOULDBLOCK)
	}
}
