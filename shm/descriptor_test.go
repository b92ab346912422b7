package shm

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func TestDTypes(t *testing.T) {
	want := []struct {
		t    DType
		name string
		size int64
	}{{F64, "F64", 8}, {F32, "F32", 4}, {F16, "F16", 2}, {BF16, "BF16", 2}, {I64, "I64", 8}, {I32, "I32", 4}, {I16, "I16", 2}, {I8, "I8", 1}, {U8, "U8", 1}, {BOOL, "BOOL", 1}}
	for _, w := range want {
		got, err := ParseDType(w.name)
		if err != nil || got != w.t {
			t.Errorf("ParseDType(%q) = %v, %v; want %v", w.name, got, err, w.t)
		}
		if w.t.String() != w.name || w.t.Size() != w.size {
			t.Errorf("%s: String %q Size %d; want %q %d", w.name, w.t.String(), w.t.Size(), w.name, w.size)
		}
		if b, err := w.t.MarshalText(); err != nil || string(b) != w.name {
			t.Errorf("%s: MarshalText = %q, %v", w.name, b, err)
		}
		var u DType
		if err := u.UnmarshalText([]byte(w.name)); err != nil || u != w.t {
			t.Errorf("UnmarshalText(%q) = %v, %v", w.name, u, err)
		}
	}
	for _, bad := range []DType{0, BOOL + 1, 255} {
		if bad.Size() != 0 || !strings.HasPrefix(bad.String(), "dtype(") {
			t.Errorf("invalid %d: Size %d String %q", uint8(bad), bad.Size(), bad)
		}
		if _, err := bad.MarshalText(); !errors.Is(err, ErrBadDescriptor) {
			t.Errorf("invalid %d: MarshalText err = %v", uint8(bad), err)
		}
	}
	for _, name := range []string{"", "f32", "F128", "dtype(0)"} {
		if _, err := ParseDType(name); !errors.Is(err, ErrBadDescriptor) {
			t.Errorf("ParseDType(%q) err = %v", name, err)
		}
		u := F64
		if err := u.UnmarshalText([]byte(name)); !errors.Is(err, ErrBadDescriptor) || u != 0 {
			t.Errorf("UnmarshalText(%q) = %v, %v; want 0 and ErrBadDescriptor", name, u, err)
		}
	}
}

func TestElems(t *testing.T) {
	tests := []struct {
		shape []int64
		want  int64 // -1: an error
	}{
		{nil, 1},
		{[]int64{}, 1},
		{[]int64{0}, 0},
		{[]int64{3, 0, 5}, 0},
		{[]int64{2, 3, 4}, 24},
		{[]int64{1, 1, 1, 1, 1, 1, 1, 1}, 1},
		{[]int64{1, 1, 1, 1, 1, 1, 1, 1, 1}, -1}, // rank 9
		{[]int64{math.MaxInt64}, math.MaxInt64},
		{[]int64{2, math.MaxInt64 / 2}, math.MaxInt64 - 1},
		{[]int64{3, math.MaxInt64 / 2}, -1},
		{[]int64{math.MaxInt64/2 + 1, 2}, -1},
		{[]int64{1 << 32, 1 << 31}, -1},
		{[]int64{-1}, -1},
		{[]int64{4, -2}, -1},
	}
	for _, tt := range tests {
		got, err := Descriptor{Shape: tt.shape}.Elems()
		if tt.want < 0 {
			if !errors.Is(err, ErrBadDescriptor) {
				t.Errorf("Elems(%v) = %d, %v; want ErrBadDescriptor", tt.shape, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Elems(%v) = %d, %v; want %d", tt.shape, got, err, tt.want)
		}
	}
}

// TestCheckBounds: every row changes one thing of a descriptor of a
// 4096-byte block, right at the edge of what is allowed.
func TestCheckBounds(t *testing.T) {
	a := NewAllocator(1 << 20)
	b, err := a.Alloc(4096, "w1")
	if err != nil {
		t.Fatal(err)
	}
	d := func(len int64, dt DType, shape []int64, strides ...int64) Descriptor {
		x := Descriptor{Off: b.Off, Gen: b.Gen, Len: len, DType: dt, Shape: shape}
		if strides != nil {
			x.Strides = strides
		}
		return x
	}
	s := func(v ...int64) []int64 { return v }
	tests := []struct {
		name string
		d    Descriptor
		want string // "" accepted, else a part of the error
	}{
		{"whole block", d(4096, F32, s(32, 32)), ""},
		{"part of the block", d(64, F32, s(16)), ""},
		{"nothing", d(0, F32, s(0)), ""},
		{"scalar", d(8, F64, s()), ""},
		{"rank 8", d(4, F32, s(1, 1, 1, 1, 1, 1, 1, 1)), ""},
		{"strides to the last element", d(4096, F32, s(2), 1023), ""},
		{"transposed", d(4096, F32, s(32, 32), 1, 32), ""},
		{"odd dimension", d(4096, F32, s(3, 32), 32, 1), ""},
		{"broadcast", d(4096, F32, s(4, 32), 0, 1), ""},
		{"dimension of one", d(4096, F32, s(1, 32), 7, 1), ""},
		{"no elements, any strides", d(4096, F32, s(0, 2), 5000, 5000), ""},
		{"a partial element at the end", d(4095, F32, s(2), 1022), ""},

		{"negative length", d(-4, F32, s(0)), "-4 bytes in a block of 4096"},
		{"longer than the block", d(4097, U8, s(4097)), "4097 bytes in a block of 4096"},
		{"no dtype", d(4096, 0, s(1024)), "dtype(0)"},
		{"rank 9", d(4, F32, s(1, 1, 1, 1, 1, 1, 1, 1, 1)), "rank 9 over 8"},
		{"shape overflows", d(4096, U8, s(1<<40, 1<<40)), "overflows"},
		{"shape larger than the length", d(4096, F32, s(33, 32)), "needs 4224 bytes, descriptor says 4096"},
		{"shape smaller than the length", d(4096, F32, s(32, 31)), "needs 3968 bytes, descriptor says 4096"},
		{"shape whose size wraps to the length", d(4096, F32, s(1<<62+1024)), "descriptor says 4096"},
		{"strides one element past the block", d(4096, F32, s(2), 1024), "strides [1024] reach element 1024 of 1024"},
		{"strides past a partial element", d(4095, F32, s(2), 1023), "reach element 1023 of 1023"},
		{"strides past the block", d(4096, F32, s(32, 32), 33, 1), "reach element 1054 of 1024"},
		{"negative stride", d(4096, F32, s(32, 32), -32, 1), "stride -32"},
		{"stride overflows", d(4096, F32, s(3), math.MaxInt64/2+1), "stride 4611686018427387904"},
		{"strides overflow together", d(4096, F32, s(2, 2), math.MaxInt64, 1), "stride 1"},
		{"too few strides", d(4096, F32, s(32, 32), 1), "1 strides for 2 dimensions"},
	}
	for _, tt := range tests {
		got, err := tt.d.Check(a, "w1")
		if tt.want == "" {
			if err != nil || got != b {
				t.Errorf("%s: Check = %+v, %v; want the block", tt.name, got, err)
			}
			continue
		}
		if !errors.Is(err, ErrBadDescriptor) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v; want ErrBadDescriptor with %q", tt.name, err, tt.want)
		}
		if got != (Block{}) {
			t.Errorf("%s: a refused descriptor returned block %+v", tt.name, got)
		}
	}
}

func TestCheckOwner(t *testing.T) {
	a := NewAllocator(1 << 20)
	b, _ := a.Alloc(64, "w1")
	d := Descriptor{Off: b.Off, Gen: b.Gen, Len: 64, DType: U8, Shape: []int64{64}}
	for owner, want := range map[string]error{"w1": nil, "*": nil, "w2": ErrNotOwner, "": ErrNotOwner} {
		if _, err := d.Check(a, owner); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Errorf("owner %q: err = %v, want %v", owner, err, want)
		}
	}
	// Committed (owner ""): only "*" may use it.
	if err := a.SetOwner(b.Off, b.Gen, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Check(a, "w1"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("committed block, old owner: err = %v", err)
	}
	if _, err := d.Check(a, "*"); err != nil {
		t.Errorf("committed block, any reader: %v", err)
	}
}

func TestView(t *testing.T) {
	r := create(t, Align)
	b := r.Bytes(BlockAlign, 16)
	if v := View[float32](b); len(v) != 4 || cap(v) != 4 {
		t.Fatalf("View[float32] of 16 bytes: len %d cap %d", len(v), cap(v))
	}
	if v := View[float64](b[:8]); len(v) != 1 {
		t.Fatalf("View[float64] of 8 bytes: len %d", len(v))
	}
	if v := View[float64](b[:7]); v != nil {
		t.Fatalf("View[float64] of 7 bytes: %v, want nil", v)
	}
	if v := View[int8](b[1:2]); len(v) != 1 {
		t.Fatalf("View[int8] of 1 byte: len %d", len(v))
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a misaligned view did not panic")
		}
	}()
	View[float32](b[2:10])
}
