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

// FuzzCheck: Check never panics and agrees with msgp's own skipper on
// arbitrary bytes (see checkAgrees): it accepts exactly the single values
// msgp.Skip reads whole that nest no deeper than MaxDepth.
func FuzzCheck(f *testing.F) {
	for _, m := range sample() {
		b, _ := m.MarshalMsg(nil)
		f.Add(b)
	}
	f.Add([]byte{0x7f})
	f.Add([]byte{0xe0})
	f.Add(append([]byte{0x8f}, make([]byte, 30)...))
	f.Add(append([]byte{0x9f}, make([]byte, 15)...))
	f.Add(append([]byte{0xbf}, make([]byte, 31)...))
	f.Add([]byte{0xc7, 1, 5, 9})
	f.Add([]byte{0xde, 0, 1, 1, 2})
	f.Add(append(bytes.Repeat([]byte{0x91}, MaxDepth), 0))
	f.Add(append(bytes.Repeat([]byte{0x91}, MaxDepth+1), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAgrees(t, b)
	})
}
