package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// checkAgrees fails t unless Check(b) agrees with msgp's own skipper, the
// reference for what one msgpack value is: Check accepts b iff msgp.Skip
// reads exactly one value spanning all of b whose non-empty arrays and maps
// nest at most MaxDepth deep, and a value refused only for its depth is
// refused with errDepth. (Check's header bound, elements <= bytes left,
// refuses nothing valid: every element takes at least one byte.)
func checkAgrees(t *testing.T, b []byte) {
	t.Helper()
	err := Check(b)
	rest, serr := msgp.Skip(b)
	one := serr == nil && len(rest) == 0
	depth := 0
	if one {
		depth = nesting(t, b)
	}
	switch {
	case err == nil && !one:
		t.Fatalf("Check accepts %s; msgp.Skip: %v with %d bytes left", show(b), serr, len(rest))
	case err == nil && depth > MaxDepth:
		t.Fatalf("Check accepts %s, nested %d deep", show(b), depth)
	case err != nil && one && depth <= MaxDepth:
		t.Fatalf("Check refuses %s (%v), one value nested %d deep", show(b), err, depth)
	case err != nil && one && !errors.Is(err, errDepth):
		t.Fatalf("Check refuses %s, nested %d deep, with %v, want errDepth", show(b), depth, err)
	}
}

func show(b []byte) string {
	const most = 48
	if len(b) > most {
		return fmt.Sprintf("% x ...", b[:most])
	}
	return fmt.Sprintf("% x", b)
}

// nesting returns how deep the non-empty arrays and maps of the one valid
// value b holds nest (0 for a scalar or an empty container), read with
// msgp's own readers.
func nesting(t *testing.T, b []byte) int {
	t.Helper()
	d, rest, err := nest(b)
	if err != nil || len(rest) != 0 {
		t.Fatalf("nesting of %s: %v, %d bytes left", show(b), err, len(rest))
	}
	return d
}

func nest(b []byte) (int, []byte, error) {
	var n uint64
	switch msgp.NextType(b) {
	case msgp.ArrayType:
		sz, rest, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil {
			return 0, b, err
		}
		n, b = uint64(sz), rest
	case msgp.MapType:
		sz, rest, err := msgp.ReadMapHeaderBytes(b)
		if err != nil {
			return 0, b, err
		}
		n, b = 2*uint64(sz), rest
	default:
		rest, err := msgp.Skip(b)
		return 0, rest, err
	}
	if n == 0 {
		return 0, b, nil
	}
	deepest := 0
	for range n {
		d, rest, err := nest(b)
		if err != nil {
			return 0, rest, err
		}
		deepest, b = max(deepest, d), rest
	}
	return deepest + 1, b, nil
}

// TestCheckLeadBytes: every lead byte, followed by every length of tail up
// to past a 16-bit length of 0x0101, of a few fillers (fixints that make
// lengths 0, 1 and 2; empty arrays; nils): Check agrees with msgp.Skip on
// the class of each byte (fixint up to 0x7f, negative fixint from 0xe0,
// fixmap and fixarray up to 15 elements, fixstr up to 31 bytes) and on
// every length header.
func TestCheckLeadBytes(t *testing.T) {
	b := make([]byte, 0, 300)
	for lead := range 256 {
		for _, fill := range []byte{0x00, 0x01, 0x02, 0x90, 0xc0} {
			b = append(b[:0], byte(lead))
			for range 270 {
				checkAgrees(t, b)
				b = append(b, fill)
			}
		}
	}
}

// TestCheckClassLimits pins the edges of the one-byte classes with values
// that are valid on one side of an edge only.
func TestCheckClassLimits(t *testing.T) {
	zeros := func(n int) []byte { return make([]byte, n) }
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"largest positive fixint", []byte{0x7f}, true},
		{"smallest negative fixint", []byte{0xe0}, true},
		{"-1", []byte{0xff}, true},
		{"empty fixmap", []byte{0x80}, true},
		{"fixmap of 15 pairs", append([]byte{0x8f}, zeros(30)...), true},
		{"fixmap of 15 pairs, one value short", append([]byte{0x8f}, zeros(29)...), false},
		{"fixarray of 15", append([]byte{0x9f}, zeros(15)...), true},
		{"fixarray of 15, one short", append([]byte{0x9f}, zeros(14)...), false},
		{"fixarray of 15 and a trailing byte", append([]byte{0x9f}, zeros(16)...), false},
		{"fixstr of 31 bytes", append([]byte{0xbf}, zeros(31)...), true},
		{"fixstr of 31 bytes, one short", append([]byte{0xbf}, zeros(30)...), false},
		{"fixstr of 31 bytes and a trailing byte", append([]byte{0xbf}, zeros(32)...), false},
		{"empty fixstr", []byte{0xa0}, true},
		{"str8 of 0", []byte{0xd9, 0}, true},
		{"str8 header cut", []byte{0xd9}, false},
		{"bin16 of 2", []byte{0xc5, 0, 2, 7, 7}, true},
		{"bin16 header cut", []byte{0xc5, 0}, false},
		{"str32 of 1", []byte{0xdb, 0, 0, 0, 1, 'x'}, true},
		{"ext8 of 1", []byte{0xc7, 1, 5, 9}, true},
		{"ext8 of 1 without its byte", []byte{0xc7, 1, 5}, false},
		{"ext16 of 0", []byte{0xc8, 0, 0, 5}, true},
		{"ext32 of 0", []byte{0xc9, 0, 0, 0, 0, 5}, true},
		{"fixext16", append([]byte{0xd8, 5}, zeros(16)...), true},
		{"fixext16 one short", append([]byte{0xd8, 5}, zeros(15)...), false},
		{"fixext1", []byte{0xd4, 5, 9}, true},
		{"float64", append([]byte{0xcb}, zeros(8)...), true},
		{"float32 one short", append([]byte{0xca}, zeros(3)...), false},
		{"uint8", []byte{0xcc, 1}, true},
		{"int16", []byte{0xd1, 1, 2}, true},
		{"array16 of 2", []byte{0xdc, 0, 2, 1, 2}, true},
		{"array32 of 1", []byte{0xdd, 0, 0, 0, 1, 1}, true},
		{"map16 of 1", []byte{0xde, 0, 1, 1, 2}, true},
		{"map16 of 1, value missing", []byte{0xde, 0, 1, 1}, false},
		{"map32 of 1", []byte{0xdf, 0, 0, 0, 1, 1, 2}, true},
		{"never used", []byte{0xc1}, false},
		{"nothing", nil, false},
		{"two values", []byte{1, 2}, false},
	} {
		if err := Check(c.b); (err == nil) != c.ok {
			t.Errorf("%s (%s): Check = %v, want ok %v", c.name, show(c.b), err, c.ok)
		}
		checkAgrees(t, c.b)
	}
}

// TestCheckDepth: non-empty containers nest up to MaxDepth deep; one more
// is errDepth; an empty container holds nothing and does not count.
func TestCheckDepth(t *testing.T) {
	nested := func(open []byte, n int, inner ...byte) []byte {
		return append(bytes.Repeat(open, n), inner...)
	}
	for _, c := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"arrays at the limit", nested([]byte{0x91}, MaxDepth, 0), true},
		{"arrays past the limit", nested([]byte{0x91}, MaxDepth+1, 0), false},
		{"maps at the limit", nested([]byte{0x81, 0}, MaxDepth, 0), true},
		{"maps past the limit", nested([]byte{0x81, 0}, MaxDepth+1, 0), false},
		{"array16s past the limit", nested([]byte{0xdc, 0, 1}, MaxDepth+1, 0), false},
		{"an empty array under the limit", nested([]byte{0x91}, MaxDepth, 0x90), true},
		{"the limit, then a sibling", append(nested([]byte{0x92}, MaxDepth, 0, 0), bytes.Repeat([]byte{0}, MaxDepth-1)...), true},
	} {
		err := Check(c.b)
		if c.ok && err != nil || !c.ok && !errors.Is(err, errDepth) {
			t.Errorf("%s: Check = %v, want ok %v", c.name, err, c.ok)
		}
		checkAgrees(t, c.b)
	}
}

// value appends a random msgpack value to b, nested at most depth deep.
func value(r *rand.Rand, b []byte, depth int) []byte {
	if depth > 0 && r.IntN(3) == 0 {
		n := r.IntN(4)
		if r.IntN(2) == 0 {
			if r.IntN(4) == 0 {
				b = append(b, 0xdc, 0, byte(n)) // array16, as msgp never writes for so few
			} else {
				b = msgp.AppendArrayHeader(b, uint32(n))
			}
			for range n {
				b = value(r, b, depth-1)
			}
			return b
		}
		b = msgp.AppendMapHeader(b, uint32(n))
		for range 2 * n {
			b = value(r, b, depth-1)
		}
		return b
	}
	switch r.IntN(10) {
	case 0:
		return msgp.AppendInt64(b, r.Int64()>>r.IntN(64))
	case 1:
		return msgp.AppendUint64(b, r.Uint64()>>r.IntN(64))
	case 2:
		return msgp.AppendString(b, string(make([]byte, r.IntN(300))))
	case 3:
		return msgp.AppendBytes(b, make([]byte, r.IntN(300)))
	case 4:
		return msgp.AppendFloat64(b, r.Float64())
	case 5:
		return msgp.AppendFloat32(b, r.Float32())
	case 6:
		return msgp.AppendNil(b)
	case 7:
		return msgp.AppendBool(b, r.IntN(2) == 0)
	case 8:
		e := msgp.RawExtension{Type: 7, Data: make([]byte, []int{1, 2, 4, 8, 16, 3, 300}[r.IntN(7)])}
		b, _ = msgp.AppendExtension(b, &e)
		return b
	default:
		return msgp.AppendInt8(b, int8(r.IntN(256)-128))
	}
}

// TestCheckAgreesWithSkip: random values nested up to past MaxDepth, whole,
// cut short, with a byte too many and with one byte changed.
func TestCheckAgreesWithSkip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 1000
	}
	for range n {
		b := value(r, nil, r.IntN(MaxDepth+4))
		checkAgrees(t, b)
		checkAgrees(t, b[:r.IntN(len(b))])
		checkAgrees(t, append(b[:len(b):len(b)], 0))
		bent := bytes.Clone(b)
		bent[r.IntN(len(bent))] = byte(r.IntN(256))
		checkAgrees(t, bent)
	}
}

// TestDecodeChecksBeforeAllocating: a Dispatch whose input array claims a
// million entries, in ten bytes, is refused before the generated decoder
// makes room for them (about 56 MiB).
func TestDecodeChecksBeforeAllocating(t *testing.T) {
	body := []byte{0x97, 0, 0, 0xa0, 0, 0xdd, 0, 0x10, 0, 0}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Decode(KindDispatch, body)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrBadFrame) {
		t.Fatalf("Decode = %v, want ErrBadFrame", err)
	}
	// Refused at the header that claims more than the bytes hold, not
	// later for running out of them.
	if !strings.Contains(err.Error(), "claims 1048576 elements, 0 bytes left") {
		t.Fatalf("Decode = %v, want the header's claim named", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
		t.Fatalf("%d bytes allocated to refuse a %d-byte body", alloc, len(body))
	}
}
