package heavy

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
)

// pair returns a packet socket pair closed at the end of the test.
func pair(t *testing.T) (local, remote *os.File) {
	t.Helper()
	local, remote, err := ipc.PacketPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close(); remote.Close() })
	return local, remote
}

// expectPacket receives one packet and checks its op, slab and number of
// descriptors.
func expectPacket(t *testing.T, remote *os.File, op byte, s *Slab, files int) {
	t.Helper()
	p, fs := recv(t, remote)
	for _, f := range fs {
		f.Close()
	}
	if p.Op != op || p.Slab != s.ID() || p.Size != s.alloc.Stats().Size /* the region's, closed or not */ || len(fs) != files {
		t.Fatalf("packet %+v with %d descriptors, want op %d for slab %d with %d", p, len(fs), op, s.ID(), files)
	}
}

// pending reports whether a packet waits on remote, without blocking.
func pending(t *testing.T, remote *os.File) bool {
	t.Helper()
	_, _, _, _, err := unix.Recvmsg(int(remote.Fd()), make([]byte, 1), nil, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if errors.Is(err, unix.EAGAIN) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// TestReaderPackets: a reader gets every sealed slab but its own
// read-only, its own read-write, each slab sealed later, and an unmap of
// each dead slab that closes; nothing after Detach.
func TestReaderPackets(t *testing.T) {
	z := newZone(t, 16<<20, 4)
	local, remote := pair(t)
	a := slab(t, z)
	unsealed, err := z.NewSlab()
	if err != nil {
		t.Fatal(err)
	}
	r, err := z.Attach(local, nil) // a worker with no slab of its own
	if err != nil {
		t.Fatal(err)
	}
	expectPacket(t, remote, protocol.SlabMapRO, a, 1)
	if pending(t, remote) {
		t.Fatalf("Attach sent an unsealed slab")
	}
	if err := z.Seal(unsealed); err != nil {
		t.Fatal(err)
	}
	expectPacket(t, remote, protocol.SlabMapRO, unsealed, 1)
	z.Retire(a)
	expectPacket(t, remote, protocol.SlabUnmap, a, 0)
	z.Detach(r)
	z.Detach(nil)
	slab(t, z)
	z.Retire(unsealed)
	if pending(t, remote) {
		t.Fatal("a packet after Detach")
	}
	select {
	case <-r.Failed():
		t.Fatalf("reader failed: %v", r.Err())
	default:
	}
	var none *Reader
	if none.Failed() != nil {
		t.Fatal("a nil reader can fail")
	}
}

// TestAttachFails: a worker whose packet socket is gone cannot attach,
// whether the packet that fails is its own slab or another one; a failed
// Attach registers nothing.
func TestAttachFails(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	own, err := z.NewSlab()
	if err != nil {
		t.Fatal(err)
	}
	local, remote := pair(t)
	remote.Close()
	if _, err := z.Attach(local, own); err == nil {
		t.Error("Attach of a slab's worker to a closed socket succeeded")
	}
	a := slab(t, z)
	local, remote = pair(t)
	remote.Close()
	if _, err := z.Attach(local, nil); err == nil {
		t.Error("Attach to a closed socket succeeded")
	}
	z.mu.Lock()
	kept := len(z.readers)
	z.mu.Unlock()
	if kept != 0 {
		t.Fatalf("%d readers kept after failed Attaches", kept)
	}
	if err := z.Seal(own); err != nil {
		t.Fatal(err)
	}
	local, remote = pair(t)
	r, err := z.Attach(local, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Detach(r)
	for range 2 {
		p, fs := recv(t, remote)
		for _, f := range fs {
			f.Close()
		}
		if p.Op != protocol.SlabMapRO || p.Slab != a.ID() && p.Slab != own.ID() {
			t.Fatalf("packet %+v", p)
		}
	}
}

// TestReaderFailsOnce: a reader whose worker stopped reading is failed
// with the reason at the first packet it cannot take, on a map or an
// unmap, and is not sent to again.
func TestReaderFailsOnce(t *testing.T) {
	for _, op := range []string{"map", "unmap"} {
		t.Run(op, func(t *testing.T) {
			z := newZone(t, 16<<20, 4)
			a := slab(t, z)
			local, remote := pair(t)
			r, err := z.Attach(local, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer z.Detach(r)
			expectPacket(t, remote, protocol.SlabMapRO, a, 1)
			remote.Close()
			if op == "map" {
				slab(t, z)
			} else {
				z.Retire(a)
			}
			select {
			case <-r.Failed():
			default:
				t.Fatal("a reader whose socket is gone did not fail")
			}
			if r.Err() == nil {
				t.Fatal("failed with no reason")
			}
			first := r.Err()
			slab(t, z) // no second close of Failed, no new reason
			if r.Err() != first {
				t.Fatalf("reason changed to %v", r.Err())
			}
		})
	}
}
