package observe

import (
	"sync/atomic"
	"time"

	"github.com/theus-run/theus/protocol"
)

// Histogram counts int64 observations into fixed buckets. Observe takes
// no lock and allocates nothing (two atomic adds), so the supervisor
// calls it on every execute. It is safe for concurrent use.
type Histogram struct {
	bounds []int64         // upper bounds, ascending
	scale  float64         // what one unit is worth in State (1e-9: ns to seconds)
	counts []atomic.Uint64 // len(bounds)+1: the last is above every bound
	sum    atomic.Int64
}

// NewHistogram returns a histogram with these upper bounds (ascending)
// whose State reports values times scale.
func NewHistogram(bounds []int64, scale float64) *Histogram {
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			panic("observe: histogram bounds must ascend")
		}
	}
	return &Histogram{bounds: bounds, scale: scale, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// NewDurationHistogram returns a histogram of durations, observed in
// nanoseconds and reported in seconds, with n buckets from first up,
// each twice the last.
func NewDurationHistogram(first time.Duration, n int) *Histogram {
	return NewHistogram(Exponential(int64(first), 2, n), 1e-9)
}

// Exponential returns n bounds: first, then each factor times the last.
func Exponential(first, factor int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = first
		first *= factor
	}
	return out
}

// Observe counts v.
func (h *Histogram) Observe(v int64) {
	lo, hi := 0, len(h.bounds) // the first bound >= v, or len: above all
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h.bounds[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	h.counts[lo].Add(1)
	h.sum.Add(v)
}

// State returns what h has counted. The counts are read one by one while
// observations go on: Count is their sum, and Sum may include an
// observation whose count was not read yet.
func (h *Histogram) State() protocol.Histogram {
	out := protocol.Histogram{Bounds: make([]float64, len(h.bounds)), Counts: make([]uint64, len(h.counts))}
	for i, b := range h.bounds {
		out.Bounds[i] = float64(b) * h.scale
	}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i]
	}
	out.Sum = float64(h.sum.Load()) * h.scale
	return out
}
