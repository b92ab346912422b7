package protocol

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

func sample() []Message {
	return []Message{
		&Hello{Magic: Magic, Protocol: Version, Build: "dev", PID: 42, Processes: []ProcessInfo{{Name: "counter.add", Inputs: []string{"domain.counter"}, Outputs: []string{"domain.counter"}, Semantic: "effect"}}},
		&Welcome{Protocol: Version, Slot: 3, HeartbeatMS: 1000, Slab: 2, InlineMax: 16384},
		&Mapped{Slab: 2},
		&Alloc{ID: 1, Dispatch: 7, Size: 1 << 30},
		&Grant{ID: 1, Slab: 2, Off: 64, Len: 1 << 30, Gen: 5},
		&Grant{ID: 2, Err: &Error{Code: "arena_full", Message: "full"}},
		&Refuse{Err: Error{Code: CodeProtocol, Message: "version 9"}},
		&Dispatch{ID: 7, Attempt: 2, Process: "p", Version: 9, Inputs: []Entry{{Path: "domain.a", Value: []byte("1"), Version: 3}}, Args: []byte(`{"by":2}`), Deadline: 123},
		&Result{ID: 7, Writes: []Write{{Path: "domain.a", Op: 1, Value: []byte("2")}}, Result: []byte("null")},
		&Result{ID: 8, Err: &Error{Code: CodeContractViolation, Message: "no", Path: "domain.x"}},
		&Cancel{ID: 9},
		&Ping{Seq: 1},
		&Pong{Seq: 1},
		&Execute{ID: 1, Process: "noop", Args: []byte("{}"), OpID: "op-1", TimeoutMS: 50},
		&Reply{ID: 1, Version: 5, Attempts: 2, Conflicts: 1, VIP: true, Result: []byte("3")},
		&Get{ID: 2, Path: "domain"},
		&GetReply{ID: 2, Version: 5, Entries: []Entry{{Path: "domain.a", Value: []byte("1"), Version: 4}}},
		&Status{ID: 3},
		&StatusReply{ID: 3, Version: 5, Commits: 4, Mode: "smart", Workers: []WorkerStatus{{Slot: 0, PID: 10, State: "ready", InFlight: 1, Processed: 2, Restarts: 0}}, Processes: []string{"noop"}, Heavy: HeavyStatus{Size: 1 << 30, Slabs: 2, InUse: 64}},
	}
}

func TestRoundTrip(t *testing.T) {
	var stream []byte
	for _, m := range sample() {
		var err error
		stream, err = AppendFrame(stream, m)
		if err != nil {
			t.Fatal(err)
		}
	}
	// One byte at a time: frames survive any split of the stream.
	r := NewReader(iotest.OneByteReader(bytes.NewReader(stream)), 0)
	for _, want := range sample() {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("%s: %v", want.Kind(), err)
		}
		// nil and empty slices encode alike, so compare encodings.
		gb, _ := got.MarshalMsg(nil)
		wb, _ := want.MarshalMsg(nil)
		if got.Kind() != want.Kind() || !bytes.Equal(gb, wb) {
			t.Fatalf("%s: got %+v, want %+v", want.Kind(), got, want)
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
}

func TestFrameLimitBeforeAllocation(t *testing.T) {
	// A header that claims 4 GiB: refused from the 5 header bytes alone.
	r := NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, byte(KindDispatch)}), 1<<20)
	_, _, err := r.Next()
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("err = %v, want ErrFrameTooLarge", err)
	}
	if cap(r.buf) != 0 {
		t.Fatalf("allocated %d bytes for a refused frame", cap(r.buf))
	}
}

func TestCutFrame(t *testing.T) {
	b, _ := AppendFrame(nil, &Ping{Seq: 1})
	_, _, err := NewReader(bytes.NewReader(b[:len(b)-1]), 0).Next()
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	_, _, err = NewReader(bytes.NewReader([]byte{0, 0, 0, 0, 1}), 0).Next()
	if !errors.Is(err, ErrBadFrame) {
		t.Fatalf("zero-length frame: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	ping, _ := (&Ping{Seq: 1}).MarshalMsg(nil)
	cases := map[string]struct {
		k    Kind
		body []byte
	}{
		"unknown kind":      {99, ping},
		"kind zero":         {0, ping},
		"trailing bytes":    {KindPing, append(ping, 0)},
		"wrong kind":        {KindDispatch, ping},
		"huge array":        {KindDispatch, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}},
		"huge map":          {KindDispatch, []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
		"huge string":       {KindGet, []byte{0x92, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff}},
		"deep nesting":      {KindPing, bytes.Repeat([]byte{0x91}, 1000)},
		"invalid lead":      {KindPing, []byte{0xc1}},
		"empty":             {KindPing, nil},
		"tuple too long":    {KindPing, []byte{0x92, 0x01, 0x02}},
		"string for number": {KindPing, []byte{0x91, 0xa1, 'x'}},
	}
	for name, c := range cases {
		_, err := Decode(c.k, c.body)
		if !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: err = %v, want ErrBadFrame", name, err)
		}
	}
}

func TestErrorsIsAcrossTheWire(t *testing.T) {
	b, _ := AppendFrame(nil, &Reply{ID: 1, Err: &Error{Code: CodeTimeout, Message: "after 1s"}})
	m, err := NewReader(bytes.NewReader(b), 0).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	got := m.(*Reply).Err
	if !errors.Is(got, ErrTimeout) || errors.Is(got, ErrCanceled) {
		t.Fatalf("errors.Is broken for %v", got)
	}
	if got.Error() != "timeout: after 1s" {
		t.Fatalf("message %q", got.Error())
	}
}

// TestAllocationBounded decodes worst-case bodies (as many empty elements
// as bytes) and checks the bytes allocated stay within a small multiple of
// the body.
func TestAllocationBounded(t *testing.T) {
	const n = 1 << 16
	body := func(k Kind) []byte {
		// A tuple whose array field holds n elements of minimal size.
		var b []byte
		switch k {
		case KindDispatch:
			b = []byte{0x97, 0, 0, 0xa0, 0, 0xdd, 0, 1, 0, 0}
			for range n {
				b = append(b, 0x93, 0xa0, 0xc4, 0, 0)
			}
			b = append(b, 0xc4, 0, 0)
		case KindStatusReply:
			b = []byte{0xdc, 0x00, 0x11, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x90, 0xdc, 0x10, 0x00}
			for range 4096 {
				b = append(b, 0xa0)
			}
			b = append(b, 0x9a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // HeavyStatus
			b = append(b, 0xa0, 0, 0, 0, 0)                   // durability
			b = append(b, 0xc0)
		}
		return b
	}
	for _, k := range []Kind{KindDispatch, KindStatusReply} {
		b := body(k)
		if _, err := Decode(k, b); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := Decode(k, b); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		if ratio := float64(alloc) / float64(len(b)); ratio > 24 {
			t.Errorf("%s: %d bytes allocated for a %d-byte body (%.1fx)", k, alloc, len(b), ratio)
		} else {
			t.Logf("%s: %.1fx the body", k, ratio)
		}
	}
}

// TestLargeValues: values as large as the frame allows decode (a limit
// of 64 KiB on every bin field once made any larger value a bad frame,
// which killed the worker that sent it).
func TestLargeValues(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 4<<20)
	for _, m := range []Message{
		&Result{ID: 1, Writes: []Write{{Path: "domain.a", Op: 1, Value: big}}, Result: big},
		&Execute{ID: 1, Process: "p", Args: big},
		&Dispatch{ID: 1, Inputs: []Entry{{Path: "domain.a", Value: big}}, Args: big},
	} {
		b, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(m.Kind(), b[5:]); err != nil {
			t.Fatalf("%s with 4 MiB values: %v", m.Kind(), err)
		}
	}
}

func TestNilErrorMatchesNothing(t *testing.T) {
	var none *Error
	var err error = none // a reply's Err, passed on as an error
	if errors.Is(err, ErrTimeout) {
		t.Fatal("a nil *Error matched ErrTimeout")
	}
	if errors.Is(ErrTimeout, none) {
		t.Fatal("ErrTimeout matched a nil *Error")
	}
}
