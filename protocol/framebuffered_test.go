package protocol

import (
	"bytes"
	"io"
	"testing"
)

// TestFrameBuffered: a whole frame in the buffer, and nothing short of
// one (a part of its header or body, or one over the limit), and it
// reads nothing from the stream.
func TestFrameBuffered(t *testing.T) {
	f, err := AppendFrame(nil, &Ping{Seq: 7})
	if err != nil {
		t.Fatal(err)
	}
	two := append(append([]byte{}, f...), f...)
	for cut := range len(two) + 1 {
		fr := NewReader(io.MultiReader(bytes.NewReader(two[:cut]), eofReader{}), 0)
		if cut > 0 {
			fr.r.Peek(1) // fill the buffer with what the stream has
		}
		want := cut >= len(f)
		if got := fr.FrameBuffered(len(f)); got != want {
			t.Fatalf("%d bytes of two frames buffered: %v, want %v", cut, got, want)
		}
		if cut >= len(f) && fr.FrameBuffered(len(f)-HeaderLen-1) {
			t.Fatalf("a frame over the limit counted as buffered")
		}
		if fr.Buffered() != cut {
			t.Fatalf("FrameBuffered read: %d bytes buffered, want %d", fr.Buffered(), cut)
		}
	}
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
