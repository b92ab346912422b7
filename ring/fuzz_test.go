package ring

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// FuzzReader reads a ring of arbitrary contents, with an arbitrary
// published tail and starting head: the reader must never panic, every
// failure must be a sticky *CorruptError, and whatever it returns must be
// a record no larger than MaxRecord lying within what was published.
// The seeds are rings a Writer left, wrapped at various places.
func FuzzReader(f *testing.F) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 12 {
		h := newHeapRing(f, MinCapacity)
		for range rng.IntN(40) { // move the head somewhere
			h.w.Write(randomRecord(rng, h.w.MaxRecord()))
			h.r.Read(nil)
		}
		start := h.r.head
		for range 1 + i%5 {
			if h.w.Write(randomRecord(rng, h.w.MaxRecord())) != nil {
				break
			}
		}
		f.Add(append([]byte(nil), h.data()...), h.w.tail, start)
	}
	f.Add([]byte{}, uint64(8), uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0}, uint64(MinCapacity), uint64(0))
	f.Add([]byte{0, 0, 0, 0, 2, 0, 0, 0}, uint64(MinCapacity+8), uint64(MinCapacity-8))
	f.Fuzz(func(t *testing.T, contents []byte, tail, start uint64) {
		h := newHeapRing(t, MinCapacity)
		defer h.close()
		if len(contents) > 0 {
			for off := 0; off < MinCapacity; off += len(contents) {
				copy(h.data()[off:], contents)
			}
		}
		start &^= 7 // the reader's own head is always aligned
		h.r.head, h.r.pos, h.r.tail = start, start%MinCapacity, start
		h.r.m.tail.Store(tail)
		var buf []byte
		for range MinCapacity / headerSize {
			before := h.r.head
			got, err := h.r.Read(buf)
			if errors.Is(err, ErrEmpty) {
				return
			}
			if err != nil {
				var ce *CorruptError
				if !errors.As(err, &ce) {
					t.Fatalf("error %T %v, want a *CorruptError", err, err)
				}
				if _, again := h.r.Read(buf); again != err {
					t.Fatalf("not sticky: %v then %v", err, again)
				}
				return
			}
			if len(got) > MaxRecord(MinCapacity) {
				t.Fatalf("a record of %d bytes", len(got))
			}
			if h.r.head > tail || h.r.head-before < padded(uint64(len(got))) {
				t.Fatalf("read [%d, %d) for %d bytes with the tail at %d", before, h.r.head, len(got), tail)
			}
			if h.r.m.head.Load() != h.r.head {
				t.Fatal("the head was not published")
			}
			buf = got
		}
	})
}
