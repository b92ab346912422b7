package protocol

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		0:               "kind(0)",
		KindHello:       "hello",
		KindPing:        "ping",
		KindBackupReply: "backup-reply",
		KindUnsubscribe: "unsubscribe",
		kindEnd:         "kind(25)",
		255:             "kind(255)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
	for k := KindHello; k < kindEnd; k++ {
		if New(k) == nil || New(k).Kind() != k {
			t.Errorf("New(%s) does not make a %s", k, k)
		}
	}
	if New(kindEnd) != nil || New(0) != nil {
		t.Error("New makes a message of an unknown kind")
	}
}

// TestFrameLimitIsInclusive: a frame of exactly the limit is read, one
// byte more is refused.
func TestFrameLimitIsInclusive(t *testing.T) {
	b, _ := AppendFrame(nil, &Ping{Seq: 1})
	n := len(b) - 4 // what the header counts: the kind byte and the body
	if _, err := NewReader(bytes.NewReader(b), n).ReadMessage(); err != nil {
		t.Fatalf("a frame of exactly the limit: %v", err)
	}
	if _, _, err := NewReader(bytes.NewReader(b), n-1).Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("a frame one byte over the limit: %v, want ErrFrameTooLarge", err)
	}
}

// TestStreamEnds: a stream that ends between frames is io.EOF; one that
// ends inside a header or a body, however early, is io.ErrUnexpectedEOF.
func TestStreamEnds(t *testing.T) {
	b, _ := AppendFrame(nil, &Ping{Seq: 1})
	for cut := range len(b) + 1 {
		fr := NewReader(bytes.NewReader(append(b[:len(b):len(b)], b[:cut]...)), 0)
		if _, err := fr.ReadMessage(); err != nil {
			t.Fatalf("cut %d: first frame: %v", cut, err)
		}
		_, _, err := fr.Next()
		want := io.ErrUnexpectedEOF
		if cut == 0 {
			want = io.EOF
		} else if cut == len(b) {
			want = nil
		}
		if err != want {
			t.Errorf("stream cut %d bytes into the second frame: %v, want %v", cut, err, want)
		}
	}
}

// TestNextKeepsItsBuffer: after the largest frame, Next reads frames into
// the buffer it has, as the body's "valid until the next call" allows.
func TestNextKeepsItsBuffer(t *testing.T) {
	small, _ := AppendFrame(nil, &Ping{Seq: 1})
	large, _ := AppendFrame(nil, &Get{ID: 1, Path: "domain.a.b.c"})
	var stream []byte
	stream = append(stream, large...)
	for range 200 {
		stream = append(stream, large...)
		stream = append(stream, small...)
	}
	fr := NewReader(bytes.NewReader(stream), 0)
	if _, _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per two frames no larger than the first", allocs)
	}
}

// TestAppendFrameAfterBytes: a frame appended to bytes already there
// leaves them and counts only its own kind byte and body.
func TestAppendFrameAfterBytes(t *testing.T) {
	prefix := []byte("xyz")
	b, err := AppendFrame(prefix, &Ping{Seq: 7})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := (&Ping{Seq: 7}).MarshalMsg(nil)
	want := append([]byte{'x', 'y', 'z', 0, 0, 0, byte(1 + len(body)), byte(KindPing)}, body...)
	if !bytes.Equal(b, want) {
		t.Fatalf("AppendFrame = % x, want % x", b, want)
	}
}

// failing is a Message whose encoding fails after writing a byte.
type failing struct{}

var errEncode = errors.New("cannot encode")

func (failing) MarshalMsg(b []byte) ([]byte, error)   { return append(b, 0xc0), errEncode }
func (failing) UnmarshalMsg(b []byte) ([]byte, error) { return b, nil }
func (failing) Kind() Kind                            { return KindPing }

// TestAppendFrameFailure: a message that cannot be encoded is an error
// and leaves dst as it was.
func TestAppendFrameFailure(t *testing.T) {
	prefix := []byte("xyz")
	b, err := AppendFrame(prefix, failing{})
	if !errors.Is(err, errEncode) || !bytes.Equal(b, prefix) {
		t.Fatalf("AppendFrame = % x, %v; want % x and the encoding error", b, err, prefix)
	}
}
