package ipc

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// A descriptor keeps its access mode in transit (read-only stays
// read-only) and arrives close-on-exec.
func TestPacketKeepsAccessModes(t *testing.T) {
	a, b, err := PacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	path := t.TempDir() + "/f"
	os.WriteFile(path, []byte("hello"), 0o600)
	ro, _ := os.Open(path)
	defer ro.Close()
	if err := SendPacket(a, []byte{1}, ro); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	n, fs, err := RecvPacket(b, buf)
	if err != nil || n != 1 || len(fs) != 1 {
		t.Fatalf("received %d bytes and %d descriptors: %v", n, len(fs), err)
	}
	defer fs[0].Close()
	got := make([]byte, 5)
	if _, err := fs[0].ReadAt(got, 0); err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := fs[0].WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("a read-only descriptor became writable in transit")
	}
	fl, _ := unix.FcntlInt(fs[0].Fd(), unix.F_GETFD, 0)
	if fl&unix.FD_CLOEXEC == 0 {
		t.Fatal("received descriptor is not close-on-exec")
	}
}
