package protocol

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzReader feeds arbitrary bytes, split in arbitrary chunks, to the
// frame reader and decoder: they must never panic, and every frame they
// accept must re-encode to a frame that decodes to the same message.
func FuzzReader(f *testing.F) {
	for _, m := range sample() {
		b, _ := AppendFrame(nil, m)
		f.Add(b, uint8(3))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 4}, uint8(1))
	f.Add([]byte{0, 0, 0, 6, 4, 0xdd, 0xff, 0xff, 0xff, 0xff}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var r io.Reader = bytes.NewReader(data)
		if chunk%2 == 1 {
			r = iotest.OneByteReader(r)
		} else {
			r = iotest.HalfReader(r)
		}
		fr := NewReader(r, 1<<16)
		for {
			m, err := fr.ReadMessage()
			if err != nil {
				var pe *Error
				if errors.As(err, &pe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrFrameTooLarge) {
					if errors.As(err, &pe) {
						continue // a bad frame is skipped whole: the stream stays in sync
					}
					return
				}
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			b, err := AppendFrame(nil, m)
			if err != nil {
				t.Fatalf("re-encode %s: %v", m.Kind(), err)
			}
			if _, err := NewReader(bytes.NewReader(b), 0).ReadMessage(); err != nil {
				t.Fatalf("re-decode %s: %v", m.Kind(), err)
			}
		}
	})
}

// FuzzCheck: Check never panics, and whatever it accepts, msgp's own
// skipper accepts as exactly one value.
func FuzzCheck(f *testing.F) {
	for _, m := range sample() {
		b, _ := m.MarshalMsg(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Check(b)
	})
}
