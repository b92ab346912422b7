package shm

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// parseMaxInline is the inline limit of the ParseDescriptor tests.
const parseMaxInline = 64

// parseLimit is the longest JSON ParseDescriptor reads at that limit.
const parseLimit = MaxDescriptorJSON + parseMaxInline*4/3 + 8

func b64(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }

// padTo pads a JSON text with spaces to n bytes.
func padTo(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }

const arenaJSON = `{"slab":1,"off":64,"len":16,"gen":1,"dtype":"F32","shape":[4]}`

// goodDescriptors are accepted, as written.
var goodDescriptors = []struct {
	name, json string
	want       Descriptor
}{
	{"arena", arenaJSON, Descriptor{Slab: 1, Off: 64, Len: 16, Gen: 1, DType: F32, Shape: []int64{4}}},
	{"arena, strided", `{"slab":2,"off":128,"len":32,"gen":9,"dtype":"F64","shape":[2,2],"strides":[2,1]}`,
		Descriptor{Slab: 2, Off: 128, Len: 32, Gen: 9, DType: F64, Shape: []int64{2, 2}, Strides: []int64{2, 1}}},
	{"arena, empty", `{"slab":1,"off":64,"len":0,"gen":1,"dtype":"U8","shape":[0]}`,
		Descriptor{Slab: 1, Off: 64, Gen: 1, DType: U8, Shape: []int64{0}}},
	{"arena, rank 8", `{"slab":1,"off":64,"len":4,"gen":1,"dtype":"I32","shape":[1,1,1,1,1,1,1,1]}`,
		Descriptor{Slab: 1, Off: 64, Len: 4, Gen: 1, DType: I32, Shape: []int64{1, 1, 1, 1, 1, 1, 1, 1}}},
	{"inline", `{"dtype":"U8","shape":[2],"len":2,"data":"AQI="}`,
		Descriptor{Len: 2, DType: U8, Shape: []int64{2}, Data: []byte{1, 2}}},
	{"inline F32", `{"dtype":"F32","shape":[2],"len":8,"data":"` + b64(8) + `"}`,
		Descriptor{Len: 8, DType: F32, Shape: []int64{2}, Data: make([]byte, 8)}},
	{"inline scalar", `{"dtype":"I64","shape":[],"len":8,"data":"` + b64(8) + `"}`,
		Descriptor{Len: 8, DType: I64, Shape: []int64{}, Data: make([]byte, 8)}},
	{"inline empty", `{"dtype":"BOOL","shape":[0],"len":0}`,
		Descriptor{DType: BOOL, Shape: []int64{0}}},
	{"inline at the limit", `{"dtype":"U8","shape":[64],"len":64,"data":"` + b64(parseMaxInline) + `"}`,
		Descriptor{Len: 64, DType: U8, Shape: []int64{64}, Data: make([]byte, parseMaxInline)}},
	{"JSON at the limit", padTo(arenaJSON, parseLimit), Descriptor{Slab: 1, Off: 64, Len: 16, Gen: 1, DType: F32, Shape: []int64{4}}},
}

// badDescriptors each get one thing wrong.
var badDescriptors = []struct{ name, json, want string }{
	{"JSON over the limit", padTo(arenaJSON, parseLimit+1), "4190 bytes of JSON"},
	{"not JSON", `{"slab":1,`, "unexpected EOF"},
	{"not an object", `[1]`, "cannot unmarshal array"},
	{"unknown field", `{"slab":1,"off":64,"len":16,"gen":1,"dtype":"F32","shape":[4],"owner":"w"}`, `unknown field "owner"`},
	{"length not a number", `{"slab":1,"off":64,"len":"16","gen":1,"dtype":"F32","shape":[4]}`, "cannot unmarshal string"},
	{"unknown dtype", `{"slab":1,"off":64,"len":16,"gen":1,"dtype":"F128","shape":[4]}`, `unknown dtype "F128"`},
	{"data after it", arenaJSON + `{}`, "data after the descriptor"},
	{"garbage after it", arenaJSON + ` x`, "data after the descriptor"},
	{"no dtype", `{"slab":1,"off":64,"len":16,"gen":1,"shape":[4]}`, "no dtype"},
	{"null dtype", `{"slab":1,"off":64,"len":16,"gen":1,"dtype":null,"shape":[4]}`, "no dtype"},
	{"no shape", `{"slab":1,"off":64,"len":16,"gen":1,"dtype":"F32"}`, "no shape"},
	{"null shape", `{"slab":1,"off":64,"len":16,"gen":1,"dtype":"F32","shape":null}`, "no shape"},
	{"rank 9", `{"slab":1,"off":64,"len":4,"gen":1,"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1]}`, "rank 9 over 8"},
	{"negative dimension", `{"slab":1,"off":64,"len":16,"gen":1,"dtype":"F32","shape":[4,-1]}`, "negative dimension -1"},
	{"shape overflows", `{"slab":1,"off":64,"len":16,"gen":1,"dtype":"U8","shape":[4294967296,4294967296]}`, "overflows"},
	{"negative length", `{"slab":1,"off":64,"len":-16,"gen":1,"dtype":"F32","shape":[4]}`, "length -16"},
	{"arena with data", `{"slab":1,"off":64,"len":2,"gen":1,"dtype":"U8","shape":[2],"data":"AQI="}`, "inline data in an arena descriptor"},
	{"arena without offset", `{"slab":1,"len":16,"gen":1,"dtype":"F32","shape":[4]}`, "without offset or generation"},
	{"arena at a negative offset", `{"slab":1,"off":-64,"len":16,"gen":1,"dtype":"F32","shape":[4]}`, "without offset or generation"},
	{"arena without generation", `{"slab":1,"off":64,"len":16,"dtype":"F32","shape":[4]}`, "without offset or generation"},
	{"inline with an offset", `{"off":64,"dtype":"U8","shape":[2],"len":2,"data":"AQI="}`, "no offset, generation or strides"},
	{"inline with a generation", `{"gen":1,"dtype":"U8","shape":[2],"len":2,"data":"AQI="}`, "no offset, generation or strides"},
	{"inline with strides", `{"dtype":"U8","shape":[2],"strides":[1],"len":2,"data":"AQI="}`, "no offset, generation or strides"},
	{"inline over the limit", `{"dtype":"U8","shape":[65],"len":65,"data":"` + b64(parseMaxInline+1) + `"}`, "65 inline bytes, over 64"},
	{"inline shorter than the shape", `{"dtype":"F32","shape":[2],"len":4,"data":"` + b64(4) + `"}`, "needs 8 bytes; 4 inline, length 4"},
	{"inline longer than the shape", `{"dtype":"U8","shape":[1],"len":2,"data":"AQI="}`, "needs 1 bytes; 2 inline, length 2"},
	{"inline with a wrong length", `{"dtype":"U8","shape":[2],"len":3,"data":"AQI="}`, "2 inline, length 3"},
	{"inline shape whose size wraps", `{"dtype":"F32","shape":[4611686018427387905],"len":4,"data":"` + b64(4) + `"}`, "4 inline, length 4"},
}

func TestParseDescriptor(t *testing.T) {
	for _, tt := range goodDescriptors {
		got, err := ParseDescriptor([]byte(tt.json), parseMaxInline)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseDescriptor = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	for _, tt := range badDescriptors {
		got, err := ParseDescriptor([]byte(tt.json), parseMaxInline)
		if !errors.Is(err, ErrBadDescriptor) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v; want ErrBadDescriptor with %q", tt.name, err, tt.want)
		}
		if !reflect.DeepEqual(got, Descriptor{}) {
			t.Errorf("%s: a refused descriptor came back as %+v", tt.name, got)
		}
	}
}

// FuzzParseDescriptor: what ParseDescriptor accepts is consistent (a known
// dtype, a shape that fits, inline bytes of exactly the shape's size) and
// writes back to JSON that parses to the same descriptor.
func FuzzParseDescriptor(f *testing.F) {
	for _, tt := range goodDescriptors {
		f.Add([]byte(tt.json))
	}
	for _, tt := range badDescriptors {
		f.Add([]byte(tt.json))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptor(b, parseMaxInline)
		if err != nil {
			if !errors.Is(err, ErrBadDescriptor) {
				t.Fatalf("error %v is not ErrBadDescriptor", err)
			}
			return
		}
		n, err := d.Elems()
		if !d.DType.valid() || d.Len < 0 || d.Shape == nil || err != nil {
			t.Fatalf("accepted %+v (elems: %v)", d, err)
		}
		if d.Inline() {
			if int64(len(d.Data)) != d.Len || n*d.DType.Size() != d.Len || len(d.Data) > parseMaxInline || d.Strides != nil || d.Off != 0 || d.Gen != 0 {
				t.Fatalf("accepted inline %+v", d)
			}
		} else if d.Off <= 0 || d.Gen == 0 || d.Data != nil {
			t.Fatalf("accepted arena %+v", d)
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("accepted a descriptor it cannot write back: %v", err)
		}
		again, err := ParseDescriptor(out, parseMaxInline)
		if err != nil || !reflect.DeepEqual(normal(again), normal(d)) {
			t.Fatalf("%s does not round-trip: %+v, %v; was %+v", out, again, err, d)
		}
	})
}

// normal makes empty and nil slices alike (omitempty drops an empty
// strides list and empty data).
func normal(d Descriptor) Descriptor {
	if len(d.Strides) == 0 {
		d.Strides = nil
	}
	if len(d.Data) == 0 {
		d.Data = nil
	}
	return d
}
