package heavy

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/theus-run/theus/ipc"
	"github.com/theus-run/theus/protocol"
	"github.com/theus-run/theus/shm"
)

func newZone(t *testing.T, size int64, workers int) *Zone {
	t.Helper()
	z, err := New(Config{Size: size, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	return z
}

func slab(t *testing.T, z *Zone) *Slab {
	t.Helper()
	s, err := z.NewSlab()
	if err != nil {
		t.Fatal(err)
	}
	if err := z.Seal(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func descJSON(t *testing.T, d shm.Descriptor) []byte {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tensor allocates a block through l and returns the descriptor of an
// F32 tensor filling it.
func tensor(t *testing.T, l *Lease, n int64) shm.Descriptor {
	t.Helper()
	b, err := l.Alloc(n * 4)
	if err != nil {
		t.Fatal(err)
	}
	return shm.Descriptor{Slab: l.slabID(), Off: b.Off, Len: n * 4, Gen: b.Gen, DType: shm.F32, Shape: []int64{n}}
}

func TestNewChecksSizes(t *testing.T) {
	if _, err := New(Config{Size: -1}); err == nil {
		t.Error("negative size accepted")
	}
	if _, err := New(Config{Size: shm.Align, Workers: 2}); err == nil {
		t.Error("a slab under shm.Align accepted")
	}
	z := newZone(t, 0, 2)
	if _, err := z.NewSlab(); !errors.Is(err, ErrNoSlab) {
		t.Errorf("zone off: NewSlab = %v, want ErrNoSlab", err)
	}
	if _, err := z.Lease(nil, 1).Alloc(64); !errors.Is(err, shm.ErrArenaFull) {
		t.Errorf("no slab: Alloc = %v, want ErrArenaFull", err)
	}
}

func TestClaimValidates(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a, b := slab(t, z), slab(t, z)
	la, la2, lb := z.Lease(a, 1), z.Lease(a, 2), z.Lease(b, 1)
	good := tensor(t, la, 1000)
	other := tensor(t, lb, 1000)
	bent := func(f func(*shm.Descriptor)) []byte {
		d := good
		d.Shape = []int64{1000}
		f(&d)
		return descJSON(t, d)
	}
	for _, c := range []struct {
		name  string
		lease *Lease
		value []byte
		want  error
	}{
		{"not JSON", la, []byte("{"), shm.ErrBadDescriptor},
		{"not a tensor", la, []byte("42"), shm.ErrBadDescriptor},
		{"another worker's slab", la, descJSON(t, other), shm.ErrNotOwner},
		{"another dispatch's block", la2, descJSON(t, good), shm.ErrNotOwner},
		{"stale generation", la, bent(func(d *shm.Descriptor) { d.Gen++ }), shm.ErrStale},
		{"not a block", la, bent(func(d *shm.Descriptor) { d.Off += 64 }), shm.ErrStale},
		{"past the block", la, bent(func(d *shm.Descriptor) { d.Len, d.Shape = 8000, []int64{2000} }), shm.ErrBadDescriptor},
		{"shape past the length", la, bent(func(d *shm.Descriptor) { d.Shape = []int64{1001} }), shm.ErrBadDescriptor},
		{"no slab", nil, descJSON(t, good), shm.ErrNotOwner},
	} {
		if _, _, err := z.Claim(c.lease, "inv", "heavy.x", c.value); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	_, ref, err := z.Claim(la, "inv", "heavy.x", descJSON(t, good))
	if err != nil || ref == (Ref{}) {
		t.Fatalf("good claim: %v", err)
	}
	if _, _, err := z.Claim(la, "inv", "heavy.y", descJSON(t, good)); !errors.Is(err, shm.ErrNotOwner) {
		t.Errorf("claiming one block twice: %v", err)
	}
	inline := shm.Descriptor{DType: shm.U8, Shape: []int64{3}, Len: 3, Data: []byte{1, 2, 3}}
	if _, ref, err := z.Claim(la, "inv", "heavy.z", descJSON(t, inline)); err != nil || ref != (Ref{}) {
		t.Errorf("inline claim: %v %v", ref, err)
	}
}

func TestLifecycleFreesEverything(t *testing.T) {
	z := newZone(t, 8<<20, 2)
	a := slab(t, z)
	// Unclaimed blocks of a dispatch go when its lease closes.
	l1 := z.Lease(a, 1)
	tensor(t, l1, 100)
	kept := tensor(t, l1, 100)
	_, ref, err := z.Claim(l1, "inv", "heavy.k", descJSON(t, kept))
	if err != nil {
		t.Fatal(err)
	}
	l1.Close()
	if st := z.Stats(); st.Blocks != 1 {
		t.Fatalf("after Close: %+v", st)
	}
	// An aborted invocation frees its claims.
	z.Abort([]Ref{ref})
	if st := z.Stats(); st.Blocks != 0 || st.InUse != 0 {
		t.Fatalf("after Abort: %+v", st)
	}
	// A committed tensor lives until Drop.
	l2 := z.Lease(a, 2)
	d := tensor(t, l2, 100)
	_, ref, _ = z.Claim(l2, "inv", "heavy.k", descJSON(t, d))
	z.Commit([]Ref{ref})
	l2.Close()
	z.Abort(nil)
	if st := z.Stats(); st.Blocks != 1 {
		t.Fatalf("committed: %+v", st)
	}
	z.Drop([]byte(`{"dtype":"U8","shape":[1],"len":1,"data":"AQ=="}`)) // inline: nothing
	z.Drop(descJSON(t, d))
	if st := z.Stats(); st.Blocks != 0 || st.InUse != 0 {
		t.Fatalf("after Drop: %+v", st)
	}
}

// recv receives the packet waiting on sock. The zone sends before it
// returns, so a packet that is not there now will never come: failing
// beats blocking.
func recv(t *testing.T, sock *os.File) (protocol.SlabPacket, []*os.File) {
	t.Helper()
	if !pending(t, sock) {
		t.Fatal("no packet waiting")
	}
	buf := make([]byte, protocol.SlabPacketSize+1)
	n, fs, err := ipc.RecvPacket(sock, buf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := protocol.ParseSlabPacket(buf[:n], len(fs))
	if err != nil {
		t.Fatal(err)
	}
	return p, fs
}

// TestDeadSlabMovesAndCloses: a dead worker's slab with a committed
// tensor stays; Move copies the tensor to a live slab; once the old
// descriptor is dropped the dead slab closes and readers are told to
// unmap it.
func TestDeadSlabMovesAndCloses(t *testing.T) {
	var changed int
	z, err := New(Config{Size: 8 << 20, Workers: 2, Changed: func() { changed++ }})
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	local, remote, err := ipc.PacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	defer remote.Close()
	a := slab(t, z)
	mine, err := z.NewSlab()
	if err != nil {
		t.Fatal(err)
	}
	r, err := z.Attach(local, mine)
	if err != nil {
		t.Fatal(err)
	}
	if p, fs := recv(t, remote); p.Op != protocol.SlabMapRW || p.Slab != mine.ID() || len(fs) != 1 {
		t.Fatalf("first packet %+v", p)
	} else {
		fs[0].Close()
	}
	if p, fs := recv(t, remote); p.Op != protocol.SlabMapRO || p.Slab != a.ID() {
		t.Fatalf("second packet %+v", p)
	} else {
		fs[0].Close()
	}
	if err := z.Seal(mine); err != nil {
		t.Fatal(err)
	}

	l := z.Lease(a, 1)
	d := tensor(t, l, 1000)
	src, _ := z.Bytes(d)
	for i := range src {
		src[i] = byte(i)
	}
	_, ref, _ := z.Claim(l, "inv", "heavy.t", descJSON(t, d))
	z.Commit([]Ref{ref})
	z.Retire(a)
	if changed == 0 {
		t.Error("Retire of a slab with tensors did not call Changed")
	}
	ev := z.Evacuees()
	if len(ev) != 1 || ev[0].Path != "heavy.t" || ev[0].Off != d.Off {
		t.Fatalf("evacuees %+v", ev)
	}
	nd, nref, err := z.Move(d, "heavy.t")
	if err != nil || nd.Slab != mine.ID() {
		t.Fatalf("Move: %+v, %v", nd, err)
	}
	dst, _ := z.Bytes(nd)
	for i := range dst {
		if dst[i] != byte(i) {
			t.Fatalf("byte %d moved wrong", i)
		}
	}
	z.Commit([]Ref{nref})
	z.Drop(descJSON(t, d)) // no snapshot sees the old place any more
	if st := z.Stats(); st.Retired != 0 || st.Slabs != 1 || st.Blocks != 1 || st.Held != st.SlabSize {
		t.Fatalf("after the move: %+v", st)
	}
	if p, fs := recv(t, remote); p.Op != protocol.SlabUnmap || p.Slab != a.ID() || len(fs) != 0 {
		t.Fatalf("want an unmap of the dead slab, got %+v", p)
	}
	z.Detach(r)
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
