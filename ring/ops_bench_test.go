package ring

import "testing"

// BenchmarkAppendRead: the CPU cost of one 64-byte record through a ring
// in one goroutine, batches of 16: Append, Commit, ReadBatch, no waking.
func BenchmarkAppendRead(b *testing.B) {
	h := newHeapRing(b, 64<<10)
	msg := make([]byte, benchMsg)
	var batch Batch
	b.SetBytes(benchMsg)
	for i := 0; i < b.N; i += 16 {
		for range 16 {
			if err := h.w.Append(msg); err != nil {
				b.Fatal(err)
			}
		}
		if err := h.w.Commit(); err != nil {
			b.Fatal(err)
		}
		if n, err := h.r.ReadBatch(&batch, 0); n != 16 || err != nil {
			b.Fatal(n, err)
		}
	}
}
