package ipc

import (
	"errors"
	"os"
	"testing"
)

func TestPacketCarriesDataAndFiles(t *testing.T) {
	local, remote, err := PacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	defer remote.Close()
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := SendPacket(local, []byte("hello"), f); err != nil {
		t.Fatal(err)
	}
	if err := SendPacket(local, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, fs, err := RecvPacket(remote, buf)
	if err != nil || string(buf[:n]) != "hello" || len(fs) != 1 {
		t.Fatalf("got %q, %d files, %v", buf[:n], len(fs), err)
	}
	fs[0].Close()
	n, fs, err = RecvPacket(remote, buf) // message boundaries are kept
	if err != nil || string(buf[:n]) != "bye" || len(fs) != 0 {
		t.Fatalf("got %q, %d files, %v", buf[:n], len(fs), err)
	}
	// Too long for the buffer: an error, never a partial message.
	SendPacket(local, make([]byte, 32), f)
	if _, fs, err := RecvPacket(remote, buf); err == nil || fs != nil {
		t.Fatalf("truncated packet: %d files, %v", len(fs), err)
	}
	local.Close()
	if n, _, err := RecvPacket(remote, buf); n != 0 || err != nil {
		t.Fatalf("after the peer closed: %d, %v", n, err)
	}
}

func TestSendPacketNeverBlocks(t *testing.T) {
	local, remote, err := PacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	defer remote.Close()
	for i := 0; ; i++ {
		err := SendPacket(local, make([]byte, 4096))
		if errors.Is(err, ErrPeerSlow) {
			return
		}
		if err != nil || i > 1<<16 {
			t.Fatalf("after %d packets: %v", i, err)
		}
	}
}
