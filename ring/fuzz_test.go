package ring

import (
	"bytes"
	"encoding/binary"
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
		h := fuzzRing(t, contents, start)
		defer h.close()
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

// FuzzReadBatch is a hostile producer against ReadBatch: ops is a script
// run on a ring whose bytes start as contents, each op 9 bytes, a code
// and a value: publish the value as the tail (behind, ahead, unaligned,
// anything), write it as 8 bytes anywhere in the data (a header or a
// payload rewritten after publication), or read a batch of at most
// value%4 records (0: all). Whatever the script, the reader must never
// panic or loop; its head must never go back, pass the tail it accepted
// or lose alignment; it must publish its head with every batch it
// returns; each record must be at most MaxRecord, and a copy: what the
// producer writes afterwards never changes a record already read; a
// failure must be a sticky *CorruptError; and a batch that failed keeps
// the records read before the fault.
func FuzzReadBatch(f *testing.F) {
	op := func(code byte, v uint64) []byte {
		return binary.NativeEndian.AppendUint64([]byte{code}, v)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 8 {
		h := newHeapRing(f, MinCapacity)
		for range rng.IntN(30) { // move the head somewhere
			h.w.Write(randomRecord(rng, h.w.MaxRecord()))
			h.r.Read(nil)
		}
		start := h.r.head
		var script []byte
		for range 1 + i%4 {
			if h.w.Write(randomRecord(rng, h.w.MaxRecord())) != nil {
				break
			}
			script = append(script, op(0, h.w.tail)...)
			script = append(script, op(2, uint64(i%3))...)
		}
		// Then rewrite a published header and read again; then move the
		// tail back.
		script = append(script, op(1, start%MinCapacity)...)
		script = append(script, op(2, 0)...)
		script = append(script, op(0, start)...)
		script = append(script, op(2, 0)...)
		f.Add(append([]byte(nil), h.data()...), start, script)
	}
	wrapAt0 := binary.NativeEndian.AppendUint64(nil, kindWrap<<32)
	f.Add(wrapAt0, uint64(0), append(op(0, MinCapacity), op(2, 0)...))
	f.Add([]byte{}, uint64(MinCapacity-8), append(op(0, MinCapacity+16), op(2, 1)...))
	f.Fuzz(func(t *testing.T, contents []byte, start uint64, script []byte) {
		h := fuzzRing(t, contents, start)
		defer h.close()
		start = h.r.head // aligned
		h.r.m.tail.Store(start)
		h.r.m.head.Store(start)
		type kept struct{ rec, copy []byte }
		var read []kept // records returned, and what they held then
		var b Batch
		var sticky error
		for len(script) >= 9 {
			code, v := script[0]%3, binary.NativeEndian.Uint64(script[1:9])
			script = script[9:]
			switch code {
			case 0:
				h.r.m.tail.Store(v)
			case 1:
				binary.NativeEndian.PutUint64(h.data()[v%MinCapacity&^7:], v)
			case 2:
				max := int(v % 4)
				head, tail := h.r.head, h.r.tail
				n, err := h.r.ReadBatch(&b, max)
				if n != b.Len() || (max > 0 && n > max) {
					t.Fatalf("ReadBatch = %d, %d records, max %d", n, b.Len(), max)
				}
				if h.r.head < head || h.r.head%8 != 0 || h.r.tail < tail || h.r.head > h.r.tail || h.r.pos != h.r.head%MinCapacity {
					t.Fatalf("head %d -> %d, tail %d -> %d, pos %d", head, h.r.head, tail, h.r.tail, h.r.pos)
				}
				if (n > 0 || err != nil) && h.r.m.head.Load() != h.r.head {
					t.Fatalf("a batch of %d (%v) did not publish the head", n, err)
				}
				var used uint64
				for i := range n {
					rec := b.Record(i)
					if len(rec) > MaxRecord(MinCapacity) {
						t.Fatalf("a record of %d bytes", len(rec))
					}
					used += padded(uint64(len(rec)))
					read = append(read, kept{rec, bytes.Clone(rec)})
				}
				if h.r.head-head < used {
					t.Fatalf("%d records of %d bytes in %d bytes of ring", n, used, h.r.head-head)
				}
				if sticky != nil && err != sticky {
					t.Fatalf("after %v, ReadBatch = %v: not sticky", sticky, err)
				}
				if err != nil {
					var ce *CorruptError
					if !errors.As(err, &ce) {
						t.Fatalf("error %T %v, want a *CorruptError", err, err)
					}
					sticky = err
				}
				// The producer scribbles on the whole buffer: no record
				// read in this batch may change.
				for i := range h.data() {
					h.data()[i] ^= 0xa5
				}
				for _, k := range read {
					if !bytes.Equal(k.rec, k.copy) {
						t.Fatal("a record changed with the ring's bytes: it aliases shared memory")
					}
				}
				read = read[:0]
			}
		}
	})
}

// fuzzRing is a heap ring filled with copies of contents, its reader's
// head at start (aligned down, as a reader's own head always is).
func fuzzRing(t *testing.T, contents []byte, start uint64) *heapRing {
	h := newHeapRing(t, MinCapacity)
	if len(contents) > 0 {
		for off := 0; off < MinCapacity; off += len(contents) {
			copy(h.data()[off:], contents)
		}
	}
	start &^= 7
	h.r.head, h.r.pos, h.r.tail = start, start%MinCapacity, start
	return h
}
