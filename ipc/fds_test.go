package ipc

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSendFilesKeepsAccessModes(t *testing.T) {
	a, b, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	path := t.TempDir() + "/f"
	os.WriteFile(path, []byte("hello"), 0o600)
	ro, _ := os.Open(path)
	defer ro.Close()
	if err := SendFiles(a, ro); err != nil {
		t.Fatal(err)
	}
	fs, err := RecvFiles(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer fs[0].Close()
	buf := make([]byte, 5)
	if _, err := fs[0].ReadAt(buf, 0); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if _, err := fs[0].WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("a read-only descriptor became writable in transit")
	}
	fl, _ := unix.FcntlInt(fs[0].Fd(), unix.F_GETFD, 0)
	if fl&unix.FD_CLOEXEC == 0 {
		t.Fatal("received descriptor is not close-on-exec")
	}
}

func TestRecvFilesRefusesWrongCount(t *testing.T) {
	a, b, _ := Pair()
	defer a.Close()
	defer b.Close()
	f1, _ := os.Open(os.DevNull)
	f2, _ := os.Open(os.DevNull)
	defer f1.Close()
	defer f2.Close()
	before := countFDs(t)
	SendFiles(a, f1, f2)
	if _, err := RecvFiles(b, 1); !errors.Is(err, ErrNoFiles) {
		t.Fatalf("err = %v", err)
	}
	if after := countFDs(t); after != before {
		t.Fatalf("%d descriptors before, %d after a refused message: leaked", before, after)
	}
	a.Write([]byte{1}) // plain data, no descriptors
	if _, err := RecvFiles(b, 1); !errors.Is(err, ErrNoFiles) {
		t.Fatalf("err = %v", err)
	}
}

func countFDs(t *testing.T) int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(es)
}
