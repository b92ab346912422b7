package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/theus-run/theus/internal/race"
	"github.com/theus-run/theus/protocol"
)

// TestMain doubles as a client run under another uid (see
// TestOtherUIDRefused).
func TestMain(m *testing.M) {
	if path := os.Getenv("THEUS_TEST_DIAL"); path != "" {
		os.Exit(dialAndAsk(path))
	}
	race.SkipExitSleep() // this binary, started as a client
	goleak.VerifyTestMain(m)
}

// dialAndAsk connects, sends a Status and exits 0 if it got a reply, 3 if
// the connection was closed without one.
func dialAndAsk(path string) int {
	c, err := Dial(path, Options{})
	if err != nil {
		return 2
	}
	defer c.Close()
	c.Send(&protocol.Status{ID: 1})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Recv(); err != nil {
		return 3
	}
	return 0
}

func listen(t *testing.T) *Listener {
	t.Helper()
	l, err := Listen(filepath.Join(t.TempDir(), "run", "t.sock"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// serveStatus answers every Status on every accepted connection until the
// listener closes, and reports refusals.
func serveStatus(l *Listener, refused chan<- error) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			var pe *PeerError
			if errors.As(err, &pe) {
				refused <- err
				continue
			}
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				for {
					m, err := c.Recv()
					if err != nil {
						return
					}
					c.Send(&protocol.StatusReply{ID: m.(*protocol.Status).ID})
				}
			})
		}
	})
	return &wg
}

func TestModes(t *testing.T) {
	l := listen(t)
	for path, want := range map[string]os.FileMode{l.Path(): 0o600, filepath.Dir(l.Path()): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
	}
}

// TestSocketAppearsReady: from the moment the socket's path exists it is
// mode 0600 and listening; no temporary name is left beside it; Close
// removes it. A watcher stats the path while a listener is opened and
// closed again and again: before, bind made the path exist (with the
// umask's mode, 0755) before the chmod.
func TestSocketAppearsReady(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "s.sock")
	var seen atomic.Int64
	stop := make(chan struct{})
	bad := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			fi, err := os.Lstat(path)
			if err != nil {
				continue
			}
			seen.Add(1)
			if fi.Mode().Perm() != 0o600 {
				select {
				case bad <- fmt.Sprintf("%s seen with mode %04o", path, fi.Mode().Perm()):
				default:
				}
			}
		}
	})
	for i := 0; i < 2000 || seen.Load() < 50; i++ {
		l, err := Listen(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if i > 100000 {
			t.Fatal("the watcher never saw the socket")
		}
	}
	close(stop)
	wg.Wait()
	select {
	case msg := <-bad:
		t.Fatal(msg)
	default:
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		t.Errorf("%s left in the socket's directory after Close", e.Name())
	}
}

func TestRefusesUnsafePaths(t *testing.T) {
	for _, p := range []string{"@theus", "\x00theus", ""} {
		if _, err := Listen(p, Options{}); !errors.Is(err, ErrNotAPath) {
			t.Errorf("Listen(%q): err = %v, want ErrNotAPath", p, err)
		}
	}
	// A symlink to a safe directory is not one: whoever may change the
	// link may point it elsewhere.
	safe := filepath.Join(t.TempDir(), "safe")
	os.Mkdir(safe, 0o700)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(safe, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(link, "t.sock"), Options{}); !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a symlinked directory: err = %v, want ErrUnsafeDir as not a directory", err)
	}
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o755)
	if _, err := Listen(filepath.Join(open, "t.sock"), Options{}); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("a 0755 directory: err = %v, want ErrUnsafeDir", err)
	}
}

func TestStaleSocketAndInUse(t *testing.T) {
	l := listen(t)
	if _, err := Listen(l.Path(), Options{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second listener: %v, want ErrInUse", err)
	}
	// A socket file whose server is gone is replaced.
	path := filepath.Join(filepath.Dir(l.Path()), "stale.sock")
	fd, _ := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	l2, err := Listen(path, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

func TestSameUIDServed(t *testing.T) {
	l := listen(t)
	wg := serveStatus(l, make(chan error, 1))
	if code := dialAndAsk(l.Path()); code != 0 {
		t.Fatalf("same-uid client: exit %d", code)
	}
	l.Close()
	wg.Wait()
}

// TestOtherUIDRefused: a client under another uid that gets past the file
// permissions (here opened on purpose) is still refused by SO_PEERCRED
// before the server reads a byte.
func TestOtherUIDRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client under another uid")
	}
	l := listen(t)
	// Open the path so only the peer-credential check stands in the way.
	for d := filepath.Dir(l.Path()); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	os.Chmod(l.Path(), 0o666)
	refused := make(chan error, 1)
	wg := serveStatus(l, refused)
	exe := copyExecutable(t) // the build directory is not open to other users
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "THEUS_TEST_DIAL="+l.Path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("client under uid 65534: %v, want exit 3 (closed without a reply)", err)
	}
	select {
	case err := <-refused:
		var pe *PeerError
		if !errors.As(err, &pe) || pe.UID != 65534 {
			t.Fatalf("refusal: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no refusal reported")
	}
	l.Close()
	wg.Wait()
}

// TestBatchedSends: many goroutines sending at once on one Conn deliver
// every frame intact.
func TestBatchedSends(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := FileConn(a, Options{})
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	cb, err := FileConn(b, Options{})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	defer cb.Close()
	const senders, each = 16, 500
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for j := range each {
				if err := ca.Send(&protocol.Ping{Seq: uint64(i*each + j)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	seen := make([]bool, senders*each)
	for range senders * each {
		m, err := cb.Recv()
		if err != nil {
			t.Fatal(err)
		}
		seq := m.(*protocol.Ping).Seq
		if seen[seq] {
			t.Fatalf("frame %d twice", seq)
		}
		seen[seq] = true
	}
	wg.Wait()
	ca.Close()
	if _, err := cb.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v, want EOF", err)
	}
	if err := ca.Send(&protocol.Ping{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// TestSendRefusesOversized: a frame over the limit is not sent and the
// connection stays usable.
func TestSendRefusesOversized(t *testing.T) {
	a, b, _ := Pair()
	ca, _ := FileConn(a, Options{MaxFrame: 1024})
	cb, _ := FileConn(b, Options{MaxFrame: 1024})
	a.Close()
	b.Close()
	defer ca.Close()
	defer cb.Close()
	err := ca.Send(&protocol.Execute{Args: make([]byte, 4096)})
	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if err := ca.Send(&protocol.Ping{Seq: 9}); err != nil {
		t.Fatal(err)
	}
	if m, err := cb.Recv(); err != nil || m.(*protocol.Ping).Seq != 9 {
		t.Fatalf("%v %v", m, err)
	}
}

// TestSendLimitIsExact: the limit is on a frame's body. A batch whose
// second frame's body is exactly MaxFrame is sent and read whole by a
// peer with the same limit; one byte more and the batch is refused,
// nothing of it sent.
func TestSendLimitIsExact(t *testing.T) {
	const limit = 1024
	a, b, _ := Pair()
	ca, _ := FileConn(a, Options{MaxFrame: limit})
	cb, _ := FileConn(b, Options{MaxFrame: limit})
	a.Close()
	b.Close()
	defer ca.Close()
	defer cb.Close()
	sized := func(body int) *protocol.Execute { // an Execute whose frame body is body bytes
		m := &protocol.Execute{ID: 7, Args: make([]byte, body)}
		f, err := protocol.AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		m.Args = make([]byte, 2*body-(len(f)-4))
		if f, _ = protocol.AppendFrame(nil, m); len(f)-4 != body {
			t.Fatalf("a body of %d bytes, want %d", len(f)-4, body)
		}
		return m
	}
	first := &protocol.Ping{Seq: 1}
	if err := ca.SendBatch(first, sized(limit+1)); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("a body of limit+1 bytes: %v, want ErrFrameTooLarge", err)
	}
	if err := ca.SendBatch(first, sized(limit)); err != nil {
		t.Fatalf("a body of exactly the limit: %v", err)
	}
	for _, want := range []protocol.Kind{protocol.KindPing, protocol.KindExecute} {
		m, err := cb.Recv()
		if err != nil || m.Kind() != want {
			t.Fatalf("got %v (%v), want %s: the refused batch sent something, or the sent one was cut", m, err, want)
		}
	}
}

// copyExecutable copies the test binary where any user may run it.
func copyExecutable(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "theus-ipc-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	exe := filepath.Join(dir, "ipc.test")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// countingConn counts its writes.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestSendBatch: the messages of one SendBatch go in order in one write;
// a batch with a frame over the limit sends none of them, and the
// connection stays usable.
func TestSendBatch(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	na, err := net.FileConn(a)
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: na}
	ca := NewConn(counted, Options{MaxFrame: 1024})
	cb, err := FileConn(b, Options{MaxFrame: 1024})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	defer cb.Close()
	if err := ca.SendBatch(&protocol.Ping{Seq: 1}, &protocol.Ping{Seq: 2}, &protocol.Ping{Seq: 3}); err != nil {
		t.Fatal(err)
	}
	if n := counted.writes.Load(); n != 1 {
		t.Fatalf("%d writes for a batch of 3, want 1", n)
	}
	err = ca.SendBatch(&protocol.Ping{Seq: 4}, &protocol.Execute{Args: make([]byte, 4096)}, &protocol.Ping{Seq: 5})
	if !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if err := ca.SendBatch(); err != nil {
		t.Fatal(err)
	}
	if err := ca.Send(&protocol.Ping{Seq: 9}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{1, 2, 3, 9} {
		if m, err := cb.Recv(); err != nil || m.(*protocol.Ping).Seq != want {
			t.Fatalf("got %v %v, want ping %d", m, err, want)
		}
	}
}

// A Listener's connections read with blocking system calls (holding a
// thread each, at most BlockingReaders at once) only with
// Options.Blocking; without it they always wait in the netpoller.
func TestBlockingReadersOnlyWhenAsked(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		l, err := Listen(filepath.Join(t.TempDir(), "run", "t.sock"), Options{Blocking: blocking})
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if blocking {
			want = BlockingReaders
		}
		if got := cap(l.slots); got != want {
			t.Errorf("Blocking %v: %d blocking readers at once, want %d", blocking, got, want)
		}
		l.Close()
	}
}
