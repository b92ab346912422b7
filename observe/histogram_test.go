package observe

import (
	"math"
	"sync"
	"testing"
	"time"
)

// Observations land in the first bucket whose bound is at least them,
// or above every bound; State reports bounds and sum scaled.
func TestHistogramBuckets(t *testing.T) {
	h := NewHistogram([]int64{1, 2, 4}, 0.5)
	for _, v := range []int64{0, 1, 2, 3, 4, 5, 100} {
		h.Observe(v)
	}
	st := h.State()
	want := []uint64{2, 1, 2, 2}
	for i, c := range want {
		if st.Counts[i] != c {
			t.Fatalf("counts %v, want %v", st.Counts, want)
		}
	}
	if st.Count != 7 || st.Sum != 115*0.5 || st.Bounds[2] != 2 {
		t.Fatalf("state %+v", st)
	}
	if q := st.Quantile(0.5); q <= 1 || q > 2 { // the median, 3, is in (2, 4]: (1, 2] scaled
		t.Errorf("median %v, want in the bucket (1, 2]", q)
	}
	if q := st.Quantile(1); q != 2 {
		t.Errorf("max %v, want the last bound", q)
	}
}

// Concurrent observations are all counted (go test -race checks the
// rest).
func TestHistogramConcurrent(t *testing.T) {
	h := NewDurationHistogram(time.Microsecond, 10)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.Observe(int64(i * g))
			}
		})
	}
	wg.Wait()
	if st := h.State(); st.Count != 4000 {
		t.Fatalf("count %d, want 4000", st.Count)
	}
	if d := h.State().Sub(h.State()); d.Count != 0 || d.Sum != 0 {
		t.Errorf("a state minus itself: %+v", d)
	}
	if q := NewHistogram([]int64{1}, 1).State().Quantile(0.5); !math.IsNaN(q) {
		t.Errorf("quantile of nothing: %v, want NaN", q)
	}
}

// Bounds must ascend strictly.
func TestHistogramBoundsAscend(t *testing.T) {
	for _, bounds := range [][]int64{{1, 1}, {2, 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewHistogram(%v) did not panic", bounds)
				}
			}()
			NewHistogram(bounds, 1)
		}()
	}
	if got := Exponential(3, 2, 4); len(got) != 4 || got[0] != 3 || got[3] != 24 {
		t.Errorf("Exponential(3, 2, 4) = %v", got)
	}
}
