package ring

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// Random record sizes through a small ring: the writer fills it until
// ErrFull, the reader drains a random part of it; every record comes out
// whole, in order, however the buffer's end cuts it.
func TestWraparoundRandomSizes(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	rng := rand.New(rand.NewPCG(5, 6))
	var queue [][]byte
	var buf []byte
	fulls, wraps := 0, 0
	for written := 0; written < 20000; {
		for {
			rec := randomRecord(rng, h.w.MaxRecord())
			before := h.w.next
			err := h.w.Write(rec)
			if errors.Is(err, ErrFull) {
				if h.w.next != before {
					t.Fatal("a full ring changed the writer")
				}
				fulls++
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.w.next-before > padded(uint64(len(rec))) {
				wraps++
			}
			queue = append(queue, rec)
			written++
			if rng.IntN(3) == 0 {
				break
			}
		}
		for k := rng.IntN(len(queue) + 1); k > 0; k-- {
			got, err := h.r.Read(buf)
			if err != nil {
				t.Fatalf("record %d: %v", written-len(queue), err)
			}
			if !bytes.Equal(got, queue[0]) {
				t.Fatalf("record %d: %d bytes, want %d", written-len(queue), len(got), len(queue[0]))
			}
			queue = queue[1:]
			buf = got
		}
	}
	if fulls == 0 || wraps == 0 {
		t.Fatalf("%d fulls and %d wraps: the test did not reach the edges", fulls, wraps)
	}
	t.Logf("%d times full, %d wrap markers", fulls, wraps)
}

func TestFullAndEmptyEdges(t *testing.T) {
	const capacity = MinCapacity
	h := newHeapRing(t, capacity)
	if _, err := h.r.Read(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("empty ring: %v, want ErrEmpty", err)
	}
	var b Batch
	if n, err := h.r.ReadBatch(&b, 0); n != 0 || err != nil {
		t.Fatalf("empty ring: ReadBatch = %d, %v", n, err)
	}
	// Records of 56 bytes take 64: the ring holds exactly capacity/64.
	rec := bytes.Repeat([]byte{7}, 56)
	for i := range capacity / 64 {
		if err := h.w.Write(rec); err != nil {
			t.Fatalf("record %d of %d: %v", i, capacity/64, err)
		}
	}
	if err := h.w.Write(nil); !errors.Is(err, ErrFull) {
		t.Fatalf("full ring, empty record: %v, want ErrFull", err)
	}
	if _, err := h.r.Read(nil); err != nil {
		t.Fatal(err)
	}
	if err := h.w.Write(rec); err != nil {
		t.Fatalf("one record freed: %v", err)
	}
	if err := h.w.Write(nil); !errors.Is(err, ErrFull) {
		t.Fatalf("full again: %v, want ErrFull", err)
	}
	if n, err := h.r.ReadBatch(&b, 0); n != capacity/64 || err != nil {
		t.Fatalf("ReadBatch = %d, %v; want %d", n, err, capacity/64)
	}
	if _, err := h.r.Read(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("drained: %v, want ErrEmpty", err)
	}

	// The largest record fits an empty ring wherever its head is, and a
	// larger one is refused whatever the room.
	max := h.w.MaxRecord()
	if err := h.w.Write(make([]byte, max+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxRecord+1: %v, want ErrTooLarge", err)
	}
	big := bytes.Repeat([]byte{9}, max)
	for off := 0; off < capacity; off += 8 {
		if err := h.w.Write(big); err != nil {
			t.Fatalf("MaxRecord at head %d: %v", h.r.pos, err)
		}
		if got, err := h.r.Read(nil); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("MaxRecord at %d: %d bytes, %v", h.r.pos, len(got), err)
		}
		if err := h.w.Write(nil); err != nil { // move the head by 8
			t.Fatal(err)
		}
		if _, err := h.r.Read(nil); err != nil {
			t.Fatal(err)
		}
	}
}

// Reserved records are invisible until Commit, which publishes them all.
func TestReserveCommit(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	for i := range 5 {
		buf, err := h.w.Reserve(i * 10)
		if err != nil {
			t.Fatal(err)
		}
		for j := range buf {
			buf[j] = byte(i)
		}
	}
	if _, err := h.r.Read(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("before Commit: %v, want ErrEmpty", err)
	}
	if err := h.w.Commit(); err != nil {
		t.Fatal(err)
	}
	var b Batch
	if n, err := h.r.ReadBatch(&b, 3); n != 3 || err != nil {
		t.Fatalf("ReadBatch(max 3) = %d, %v", n, err)
	}
	if n, err := h.r.ReadBatch(&b, 0); n != 2 || err != nil {
		t.Fatalf("ReadBatch = %d, %v", n, err)
	}
	if got := b.Record(1); !bytes.Equal(got, bytes.Repeat([]byte{4}, 40)) {
		t.Fatalf("record 4: %v", got)
	}
}

// A copy, not a view: rewriting the ring after a Read (as a hostile
// producer may) does not change what Read returned.
func TestReadCopiesOut(t *testing.T) {
	h := newHeapRing(t, MinCapacity)
	if err := h.w.Write([]byte("payload")); err != nil {
		t.Fatal(err)
	}
	got, err := h.r.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	copy(h.data()[headerSize:], "XXXXXXX")
	if string(got) != "payload" {
		t.Fatalf("the record changed with the ring: %q", got)
	}
}
