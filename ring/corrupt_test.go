package ring

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/theus-run/theus/protocol"
)

// A producer that breaks the rules makes the reader fail with a
// *CorruptError, never a panic and never a record made of bytes outside
// what was published; the error is sticky.
func TestCorruptRingIsATypedError(t *testing.T) {
	put := func(h *heapRing, off, v uint64) { binary.NativeEndian.PutUint64(h.data()[off:], v) }
	hdr := func(n, kind uint64) uint64 { return kind<<32 | n }
	tests := []struct {
		name   string
		break_ func(h *heapRing)
	}{
		{"unaligned tail", func(h *heapRing) { h.r.m.tail.Store(h.r.m.tail.Load() + 3) }},
		{"tail behind the head", func(h *heapRing) { h.r.m.tail.Store(0) }},
		{"tail more than a ring ahead", func(h *heapRing) { h.r.m.tail.Store(h.r.head + MinCapacity + 8) }},
		{"zero header", func(h *heapRing) { put(h, h.r.pos, 0) }},
		{"unknown kind", func(h *heapRing) { put(h, h.r.pos, hdr(3, 77)) }},
		{"length over MaxRecord", func(h *heapRing) { put(h, h.r.pos, hdr(MinCapacity, kindRecord)) }},
		{"length past the tail", func(h *heapRing) { put(h, h.r.pos, hdr(100, kindRecord)) }},
		{"record across the end", func(h *heapRing) {
			h.r.m.tail.Store(h.r.head + 2048) // room enough, but from pos 3968 a record of 1000 runs off the end
			put(h, h.r.pos, hdr(1000, kindRecord))
		}},
		{"wrap marker past the tail", func(h *heapRing) {
			h.r.m.tail.Store(h.r.head + 8)
			put(h, h.r.pos, hdr(0, kindWrap))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHeapRing(t, MinCapacity)
			defer h.close()
			// Move the head near the end of the buffer, then publish a record.
			for h.r.pos != MinCapacity-128 {
				if err := h.w.Write(make([]byte, 56)); err != nil {
					t.Fatal(err)
				}
				if _, err := h.r.Read(nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.w.Write([]byte("a good record")); err != nil {
				t.Fatal(err)
			}
			tt.break_(h)
			// A second ring, broken the same way, read by ReadBatch
			// first: it finds the corruption itself, not as a sticky
			// error that Read found.
			h2 := newHeapRing(t, MinCapacity)
			defer h2.close()
			copy(h2.mem, h.mem)
			h2.r.head, h2.r.pos, h2.r.tail = h.r.head, h.r.pos, h.r.tail
			var b2 Batch
			if n, err := h2.r.ReadBatch(&b2, 0); n != 0 || !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadBatch first = %d, %v; want 0 records and ErrCorrupt", n, err)
			}
			_, err := h.r.Read(nil)
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || !errors.Is(err, protocol.ErrBadFrame) {
				t.Fatalf("Read = %v (%T), want a *CorruptError that is ErrCorrupt and protocol.ErrBadFrame", err, err)
			}
			if ce.Ring != "request" {
				t.Errorf("Ring = %q", ce.Ring)
			}
			t.Log(err)
			var b Batch
			if _, again := h.r.ReadBatch(&b, 0); again != err {
				t.Errorf("second read: %v, want the same error", again)
			}
			if again := h.r.Wait(t.Context()); again != err {
				t.Errorf("Wait: %v, want the same error", again)
			}
		})
	}
}

// A consumer that publishes a head it cannot have reached (unaligned,
// past the tail, or behind an earlier head) is caught by the writer the
// same way, when it next needs the head.
func TestCorruptHeadIsATypedError(t *testing.T) {
	tests := []struct {
		name string
		head func(tail uint64) uint64
	}{
		{"unaligned", func(uint64) uint64 { return 3 }},
		{"past the tail", func(tail uint64) uint64 { return tail + 8 }},
		{"backwards", func(uint64) uint64 { return 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHeapRing(t, MinCapacity)
			defer h.close()
			rec := make([]byte, 1000)
			for h.w.Write(rec) == nil {
			}
			if _, err := h.r.Read(nil); err != nil { // a true head: 1008
				t.Fatal(err)
			}
			if err := h.w.Write(rec); err != nil { // loads and keeps it
				t.Fatal(err)
			}
			h.w.m.head.Store(tt.head(h.w.tail))
			err := h.w.Write(rec)
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, protocol.ErrBadFrame) {
				t.Fatalf("%v, want ErrCorrupt", err)
			}
			t.Log(err)
			if again := h.w.Commit(); again != err {
				t.Fatalf("Commit after: %v", again)
			}
			h.w.m.head.Store(h.w.head) // a true head again: the error stays all the same
			if _, again := h.w.Reserve(8); again != err {
				t.Fatalf("Reserve after: %v", again)
			}
		})
	}
}
