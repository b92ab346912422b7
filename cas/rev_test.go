package cas

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"unsafe"

	"github.com/theus-run/theus/contract"
)

// TestRevSizes: a rev with its value inline fills a size class of the
// runtime's allocator exactly (48 and 64 bytes); a field added to rev
// would move every small value up a class.
func TestRevSizes(t *testing.T) {
	if n := unsafe.Sizeof(rev{}); n != 40 {
		t.Errorf("rev is %d bytes, want 40", n)
	}
	if n := unsafe.Sizeof(revTiny{}); n != 48 {
		t.Errorf("revTiny is %d bytes, want 48", n)
	}
	if n := unsafe.Sizeof(revSmall{}); n != 64 {
		t.Errorf("revSmall is %d bytes, want 64", n)
	}
}

// revSink keeps newRev's result on the heap in TestValueSizes.
var revSink *rev

// TestValueSizes: values on both sides of each inline size read back
// whole, in one allocation up to smallValue bytes; an empty or nil value
// is a value, not a deletion; and the caller's slice is copied.
func TestValueSizes(t *testing.T) {
	s := New(Config{})
	ctx := context.Background()
	for _, n := range []int{-1, 0, 1, tinyValue, tinyValue + 1, smallValue, smallValue + 1, 1000} {
		p := contract.Path("domain.v" + strconv.Itoa(n+1))
		var val []byte // n == -1: a nil value
		if n >= 0 {
			val = bytes.Repeat([]byte{byte(n)}, n)
		}
		want := 1.0
		if n > smallValue {
			want = 2 // the rev and the value's copy
		}
		if a := testing.AllocsPerRun(10, func() { revSink = newRev(1, val, false, nil) }); a != want {
			t.Errorf("%d bytes: %v allocations, want %v", n, a, want)
		}
		if _, err := s.Commit(ctx, s.Version(), nil, Delta{{Path: p, Op: contract.OpSet, Value: val}}, Options{}); err != nil {
			t.Fatal(err)
		}
		for i := range val {
			val[i]++ // the store keeps its own copy
		}
		sn := s.Snapshot()
		e, ok := sn.Get(p)
		sn.Release()
		if !ok || e.Value == nil || len(e.Value) != max(n, 0) || !bytes.Equal(e.Value, bytes.Repeat([]byte{byte(n)}, max(n, 0))) {
			t.Fatalf("%d bytes: read back %v, %v", n, e.Value, ok)
		}
	}
	if s.Len() != 8 {
		t.Fatalf("Len %d, want 8: an empty value counts as a value", s.Len())
	}
	if _, err := s.Commit(ctx, s.Version(), nil, Delta{{Path: "domain.v0", Op: contract.OpDelete}}, Options{}); err != nil {
		t.Fatal(err)
	}
	sn := s.Snapshot()
	defer sn.Release()
	if _, ok := sn.Get("domain.v0"); ok || s.Len() != 7 {
		t.Fatalf("deleted path still read (%v), Len %d", ok, s.Len())
	}
}
