package shm

import (
	"errors"
	"testing"
)

func TestAllocRounding(t *testing.T) {
	a := NewAllocator(1 << 20)
	for _, c := range []struct{ n, want int64 }{{1, 64}, {63, 64}, {64, 64}, {65, 128}, {4096, 4096}, {4097, 4160}} {
		b, err := a.Alloc(c.n, "w")
		if err != nil || b.Len != c.want || b.Off%BlockAlign != 0 || b.Owner != "w" {
			t.Errorf("Alloc(%d) = %+v, %v; want %d bytes", c.n, b, err, c.want)
		}
	}
	before := a.Stats()
	for _, n := range []int64{0, -1, -64} {
		if b, err := a.Alloc(n, "w"); err == nil {
			t.Errorf("Alloc(%d) = %+v, want an error", n, b)
		}
	}
	if a.Stats() != before {
		t.Fatalf("refused allocations changed the allocator: %+v, was %+v", a.Stats(), before)
	}
}

func TestAllocatorSizes(t *testing.T) {
	tests := []struct {
		size int64
		want Stats
	}{
		{0, Stats{}},
		{BlockAlign, Stats{Size: BlockAlign}}, // only the reserved first block: nothing to hand out
		{BlockAlign + 36, Stats{Size: BlockAlign}},
		{2 * BlockAlign, Stats{Size: 2 * BlockAlign, LargestFree: BlockAlign, FreeSpans: 1}},
		{2*BlockAlign + 63, Stats{Size: 2 * BlockAlign, LargestFree: BlockAlign, FreeSpans: 1}},
	}
	for _, tt := range tests {
		a := NewAllocator(tt.size)
		if st := a.Stats(); st != tt.want {
			t.Errorf("NewAllocator(%d): %+v, want %+v", tt.size, st, tt.want)
		}
		b, err := a.Alloc(1, "w")
		if tt.want.LargestFree == 0 {
			if !errors.Is(err, ErrArenaFull) {
				t.Errorf("NewAllocator(%d).Alloc(1): %+v, %v; want ErrArenaFull", tt.size, b, err)
			}
			continue
		}
		// The one free block fits exactly.
		if err != nil || b.Off != BlockAlign || b.Len != BlockAlign {
			t.Errorf("NewAllocator(%d).Alloc(1): %+v, %v", tt.size, b, err)
		}
	}
}

// Alloc takes the smallest free span that fits, the lowest of equals, and
// an exact fit at once.
func TestAllocBestFit(t *testing.T) {
	a := NewAllocator(4096)
	var blocks []Block
	for _, n := range []int64{384, 64, 128, 64, 256, 64, 256, 64} {
		b, err := a.Alloc(n, "w")
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	// Free spans: 384 at 64, 128 at 512, 256 at 704, 256 at 1024, and
	// the 2752-byte tail at 1344.
	for _, i := range []int{0, 2, 4, 6} {
		if err := a.Free(blocks[i].Off, blocks[i].Gen); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.Stats(); st.FreeSpans != 5 || st.LargestFree != 2752 {
		t.Fatalf("layout: %+v", st)
	}
	for _, c := range []struct {
		n, off int64
		why    string
	}{
		{128, 512, "the exact fit, past a larger span"},
		{192, 704, "the lower of two equal best fits"},
		{256, 1024, "the exact fit"},
		{320, 64, "the smallest that fits, not the tail"},
		{64, 384, "the first exact fit: what the 320 left"},
	} {
		b, err := a.Alloc(c.n, "w")
		if err != nil || b.Off != c.off {
			t.Fatalf("Alloc(%d) = %+v, %v; want offset %d (%s)", c.n, b, err, c.off, c.why)
		}
	}
}

// Freeing coalesces with both neighbours, at either end of the free list.
func TestFreeCoalescesAtTheEnds(t *testing.T) {
	a := NewAllocator(5 * BlockAlign)
	var blocks []Block
	for range 4 {
		b, err := a.Alloc(BlockAlign, "w")
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	if _, err := a.Alloc(1, "w"); !errors.Is(err, ErrArenaFull) {
		t.Fatalf("full arena: %v", err)
	}
	for i, step := range []struct {
		block int
		spans int
	}{{3, 1}, {0, 2}, {1, 2}, {2, 1}} {
		b := blocks[step.block]
		if err := a.Free(b.Off, b.Gen); err != nil {
			t.Fatal(err)
		}
		if st := a.Stats(); st.FreeSpans != step.spans || st.InUse != int64(3-i)*BlockAlign {
			t.Fatalf("after freeing block %d: %+v, want %d spans", step.block, st, step.spans)
		}
	}
	if st := a.Stats(); st.LargestFree != 4*BlockAlign {
		t.Fatalf("all free: %+v", st)
	}
}

func TestBlockSetOwnerAndBlocks(t *testing.T) {
	a := NewAllocator(1 << 16)
	b1, _ := a.Alloc(100, "w1")
	b2, _ := a.Alloc(10, "w2")
	if got, err := a.Block(b2.Off); err != nil || got != b2 {
		t.Fatalf("Block(%d) = %+v, %v; want %+v", b2.Off, got, err, b2)
	}
	if _, err := a.Block(b2.Off + BlockAlign); !errors.Is(err, ErrStale) {
		t.Fatalf("Block of a free offset: %v", err)
	}
	if err := a.SetOwner(b1.Off, b1.Gen+1, "w3"); !errors.Is(err, ErrStale) {
		t.Fatalf("SetOwner with a stale generation: %v", err)
	}
	if err := a.SetOwner(b1.Off+1, b1.Gen, "w3"); !errors.Is(err, ErrStale) {
		t.Fatalf("SetOwner of no block: %v", err)
	}
	if got, _ := a.Lookup(b1.Off, b1.Gen); got.Owner != "w1" {
		t.Fatalf("a refused SetOwner changed the owner to %q", got.Owner)
	}
	if err := a.SetOwner(b1.Off, b1.Gen, "w3"); err != nil {
		t.Fatal(err)
	}
	b1.Owner = "w3"
	if got := a.Blocks(); len(got) != 2 || got[0] != b1 || got[1] != b2 {
		t.Fatalf("Blocks = %+v, want %+v %+v", got, b1, b2)
	}
	if err := a.Free(b1.Off, b1.Gen+1); !errors.Is(err, ErrStale) {
		t.Fatalf("Free with a stale generation: %v", err)
	}
	if freed := a.FreeOwner("w3"); freed != 128 || len(a.Blocks()) != 1 {
		t.Fatalf("FreeOwner freed %d bytes, %d blocks left", freed, len(a.Blocks()))
	}
}
