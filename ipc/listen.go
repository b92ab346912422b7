package ipc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// DefaultPath returns the client socket's default path: $THEUS_SOCKET,
// else $XDG_RUNTIME_DIR/theus/theus.sock, else /tmp/theus-<uid>/theus.sock.
func DefaultPath() string {
	if p := os.Getenv("THEUS_SOCKET"); p != "" {
		return p
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "theus", "theus.sock")
	}
	return filepath.Join(os.TempDir(), "theus-"+strconv.Itoa(os.Getuid()), "theus.sock")
}

// ErrInUse is returned by Listen when a live server answers on the path.
var ErrInUse = errors.New("ipc: socket in use by a running server")

// ErrUnsafeDir is returned by Listen when the socket's directory is not
// owned by this user or can be entered by others.
var ErrUnsafeDir = errors.New("ipc: unsafe socket directory")

// ErrNotAPath is returned by Listen for an empty or abstract socket
// path: an abstract socket has no permissions, so any user could
// connect.
var ErrNotAPath = errors.New("ipc: need a filesystem path (abstract sockets have no permissions)")

// PeerError is returned by Accept for a connection it refused: the peer
// runs under another uid. The connection is already closed.
type PeerError struct {
	UID, PID int
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("ipc: refused a client with uid %d (pid %d): only uid %d may connect", e.UID, e.PID, os.Getuid())
}

// Listener is the client socket.
type Listener struct {
	ln   *net.UnixListener
	path string
	opts Options
	// allow is the uid a peer must have; the listener's own by default.
	allow int
	// slots bounds the connections in a blocking read (park.go); without
	// opts.Blocking it has no room: every read waits in the netpoller.
	slots   chan struct{}
	readers *sync.Pool // frame readers, for the connections with traffic
}

// Listen creates the directory of path (mode 0700, refusing one that is
// not this user's or that others can enter), removes a stale socket left
// by a dead server, binds path with mode 0600 and listens. Abstract
// sockets (a path starting with @) are refused: they have no permissions.
func Listen(path string, o Options) (*Listener, error) {
	if path == "" || strings.HasPrefix(path, "@") || strings.HasPrefix(path, "\x00") {
		return nil, fmt.Errorf("%w: listen %q", ErrNotAPath, path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ipc: listen: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	// The socket is bound and chmodded under a temporary name, then
	// linked to path: path never names a socket that is not listening yet
	// or not yet 0600, and the link fails rather than replace a socket
	// another server bound meanwhile. (The directory is 0700 and ours, so
	// no other user can reach the temporary name either; no umask dance,
	// which would change file modes for the whole process.)
	tmp := filepath.Join(dir, ".t"+strconv.FormatInt(int64(os.Getpid()), 36))
	os.Remove(tmp) // left by a dead process of this pid
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("ipc: listen: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the listener unlinks path, not the temporary name
	err = os.Chmod(tmp, 0o600)
	if err == nil {
		err = os.Link(tmp, path)
	}
	os.Remove(tmp)
	if err != nil {
		ln.Close()
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%w: %s (bound by another server just now)", ErrInUse, path)
		}
		return nil, fmt.Errorf("ipc: listen: %w", err)
	}
	o.PeerDrains = false // a server shuts the reading side of a client that is gone
	l := &Listener{ln: ln, path: path, opts: o, allow: os.Getuid(), slots: make(chan struct{})}
	if o.Blocking {
		l.slots = make(chan struct{}, BlockingReaders)
	}
	o.defaults()
	l.readers = newReaderPool(o.MaxFrame)
	return l, nil
}

func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("ipc: listen: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok {
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafeDir, dir)
	}
	if int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not %d", ErrUnsafeDir, dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; want 0700 (chmod 700 %s)", ErrUnsafeDir, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ipc: listen: %w", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("ipc: listen: %s exists and is not a socket", path)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("%w: %s", ErrInUse, path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("ipc: remove stale socket: %w", err)
	}
	return nil
}

// Path returns the socket's path.
func (l *Listener) Path() string { return l.path }

// Accept waits for a client, checks its uid (SO_PEERCRED on Linux,
// LOCAL_PEERCRED on macOS) before reading anything, and returns a Conn
// that holds a frame reader only while it has traffic and, with
// Options.Blocking, reads with blocking system calls while it does (see
// park.go). A refused client gets a
// *PeerError (the caller logs it and accepts again); any other error means
// the listener is closed or broken.
func (l *Listener) Accept() (*Conn, error) {
	uc, err := l.ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	uid, pid, err := peerCred(uc)
	if err != nil {
		uc.Close()
		return nil, &PeerError{UID: -1, PID: -1}
	}
	if uid != l.allow {
		uc.Close()
		return nil, &PeerError{UID: uid, PID: pid}
	}
	return hybridConn(uc, l.slots, l.readers, l.opts)
}

// unixConn wraps uc, a dialed connection, per o: with o.Blocking on a
// blocking descriptor, else as a Listener's connections are (park.go),
// with a pool of frame readers of its own.
func unixConn(uc *net.UnixConn, o Options) (*Conn, error) {
	if !o.Blocking {
		o.defaults()
		return hybridConn(uc, nil, newReaderPool(o.MaxFrame), o)
	}
	f, err := uc.File()
	uc.Close()
	if err != nil {
		return nil, fmt.Errorf("ipc: %w", err)
	}
	defer f.Close()
	return FileConn(f, o)
}

// Close stops listening and removes the socket file.
func (l *Listener) Close() error {
	err := l.ln.Close()
	if err == nil {
		os.Remove(l.path) // the first Close only: a later server may own path by then
	}
	return err
}

// Dial connects to the client socket at path.
func Dial(path string, o Options) (*Conn, error) {
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("ipc: dial %s: %w (is theus-supervisor running? set --socket or THEUS_SOCKET)", path, err)
	}
	return unixConn(uc, o)
}
