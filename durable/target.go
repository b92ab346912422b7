package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/cas"
)

// ErrBadTarget: a backup may not be written there; nothing was changed.
var ErrBadTarget = errors.New("durable: refused backup target")

// backupTarget returns the directory (symbolic links resolved) and the
// name a backup to path is written as, or ErrBadTarget when path must
// not be replaced: anything but a regular file (a directory such as the
// state directory, whose lock is on it; a socket; a pipe; a device), a
// file this process has open (its state file, under any of its names),
// or a file another process holds locked (another supervisor's).
func backupTarget(path string) (dir, name string, err error) {
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return "", "", fmt.Errorf("durable: backup: %w", err)
		}
		path = wd + "/" + path
	}
	// Not cleaned lexically (filepath.Clean drops x/.. without looking
	// at x): the directory is resolved the kernel's way, symbolic links
	// first, so what is checked is what the rename replaces.
	i := strings.LastIndexByte(path, '/')
	name = path[i+1:]
	if name == "" || name == "." || name == ".." {
		return "", "", fmt.Errorf("%w: %s does not name a file", ErrBadTarget, path)
	}
	if dir, err = filepath.EvalSymlinks(path[:max(i, 1)]); err != nil {
		return "", "", fmt.Errorf("durable: backup %s: %w", path, err)
	}
	target := filepath.Join(dir, name)
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return dir, name, stateFileOfLockedDir(path, dir, name)
	}
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if fi, err = os.Stat(target); errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("%w: %s is a symbolic link to nothing", ErrBadTarget, path)
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("durable: backup %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("%w: %s is %s, not a regular file", ErrBadTarget, path, kind(fi.Mode()))
	}
	if open := openAs(idOf(fi)); open != "" {
		what := "a file"
		if filepath.Base(open) == FileName {
			what = "the state file"
		}
		return "", "", fmt.Errorf("%w: %s is %s this supervisor has open (%s): replacing it would lose what the supervisor writes there", ErrBadTarget, path, what, open)
	}
	// A file this user may not read is no journal's of this user: the
	// rename may replace it as before.
	if f, err := os.OpenFile(target, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		held := heldByAnother(f)
		f.Close()
		if held {
			return "", "", fmt.Errorf("%w: %s is locked by another process (a running supervisor's state file?)", ErrBadTarget, path)
		}
	} else if !errors.Is(err, fs.ErrPermission) {
		return "", "", fmt.Errorf("durable: backup %s: %w", path, err)
	}
	return dir, name, stateFileOfLockedDir(path, dir, name)
}

// stateFileOfLockedDir refuses the name of the state file in a state
// directory that a supervisor holds, even before the file exists.
func stateFileOfLockedDir(path, dir, name string) error {
	if name != FileName {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("durable: backup %s: %w", path, err)
	}
	defer d.Close()
	if heldByAnother(d) {
		return fmt.Errorf("%w: %s is the state file of a running supervisor's state directory", ErrBadTarget, path)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// openAs returns the name under which this process has the file id
// open (or runs it), "" if it does not. It reads /proc/self: where
// there is none, it finds nothing.
func openAs(id fileID) string {
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		link := "/proc/self/fd/" + fd.Name()
		if fi, err := os.Stat(link); err == nil && idOf(fi) == id {
			name, _ := os.Readlink(link)
			return name
		}
	}
	if fi, err := os.Stat("/proc/self/exe"); err == nil && idOf(fi) == id {
		return "its own executable"
	}
	return ""
}

// tempPrefix is how the names of the temporary files a state file named
// name is written through begin; a random base-36 suffix follows.
func tempPrefix(name string) string { return "." + name + ".tmp-" }

// writeFile writes st as a state file named name in dir, atomically:
// into a new temporary file beside it, fsynced, renamed over name, dir
// fsynced. A crash leaves either the old file or the new one, and at
// worst the temporary file, which removeStaleTemps removes.
func writeFile(dir, name string, st cas.State) (err error) {
	db, tmp, err := createTemp(dir, name)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initialize(tx); err != nil {
			return err
		}
		return fill(tx, st)
	})
	if err != nil {
		return fmt.Errorf("durable: write %s: %w", filepath.Join(dir, name), err)
	}
	// Renamed while bbolt still holds its lock: the temporary file is
	// never unlocked under its temporary name.
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("durable: %w", err)
	}
	return syncDir(dir)
}

// createTemp creates and opens a new temporary file for name in dir,
// locked (bbolt's flock) from the instant after its creation. A stale
// file remover that took it in that instant is detected: the name no
// longer names the file, and another is tried.
func createTemp(dir, name string) (*bolt.DB, string, error) {
	for range 8 {
		tmp := filepath.Join(dir, tempPrefix(name)+strconv.FormatUint(rand.Uint64(), 36))
		var f *os.File
		db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout, OpenFile: func(n string, flag int, perm os.FileMode) (*os.File, error) {
			var err error
			f, err = os.OpenFile(n, flag|os.O_EXCL, perm)
			return f, err
		}})
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("durable: write %s: %w", filepath.Join(dir, name), err)
		}
		fi, err := os.Lstat(tmp)
		ours, ferr := f.Stat()
		if err == nil && ferr == nil && idOf(fi) == idOf(ours) {
			return db, tmp, nil
		}
		db.Close()
	}
	return nil, "", fmt.Errorf("durable: write %s: no temporary file could be kept", filepath.Join(dir, name))
}

// removeStaleTemps removes the temporary files for name in dir (named
// by tempPrefix and a base-36 suffix, regular files) that no process
// holds: those of a writer that was killed. A writer holds its own
// locked until the rename. It returns the names it removed.
func removeStaleTemps(dir, name string) (removed []string) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	prefix := tempPrefix(name)
	for _, e := range es {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789abcdefghijklmnopqrstuvwxyz") != "" || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			fi, err := os.Lstat(p)
			ours, ferr := f.Stat()
			if err == nil && ferr == nil && idOf(fi) == idOf(ours) && os.Remove(p) == nil {
				removed = append(removed, p)
			}
		}
		f.Close()
	}
	return removed
}
