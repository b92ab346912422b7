package protocol

import (
	"bytes"
	"errors"
	"testing"
)

func TestSlabPacketRoundTrip(t *testing.T) {
	for _, p := range []SlabPacket{{SlabMapRW, 1, 2 << 20}, {SlabMapRO, 1<<32 - 1, 1<<63 - 1}, {SlabUnmap, 7, 0}} {
		b := p.Append(nil)
		if len(b) != SlabPacketSize {
			t.Fatalf("%+v: %d bytes", p, len(b))
		}
		files := 1
		if p.Op == SlabUnmap {
			files = 0
		}
		got, err := ParseSlabPacket(b, files)
		if err != nil || got != p {
			t.Fatalf("%+v: parsed %+v, %v", p, got, err)
		}
	}
	// Little-endian, op first: the layout docs/PROTOCOL.md gives.
	want := []byte{2, 3, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0}
	if b := (SlabPacket{SlabMapRO, 3, 1 << 20}).Append(nil); !bytes.Equal(b, want) {
		t.Fatalf("encoding % x, want % x", b, want)
	}
}

func TestParseSlabPacketRefusesMalformed(t *testing.T) {
	good := SlabPacket{SlabMapRO, 3, 1 << 20}.Append(nil)
	for name, c := range map[string]struct {
		b     []byte
		files int
	}{
		"short":           {good[:5], 1},
		"long":            {append(good[:len(good):len(good)], 0), 1},
		"no descriptor":   {good, 0},
		"two descriptors": {good, 2},
		"unknown op 0":    {SlabPacket{0, 3, 1}.Append(nil), 1},
		"unknown op 4":    {SlabPacket{4, 3, 1}.Append(nil), 1},
		"slab 0":          {SlabPacket{SlabMapRO, 0, 1}.Append(nil), 1},
		"negative size":   {SlabPacket{SlabMapRW, 3, -1}.Append(nil), 1},
		"unmap with fd":   {SlabPacket{SlabUnmap, 3, 1}.Append(nil), 1},
	} {
		if _, err := ParseSlabPacket(c.b, c.files); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: %v, want ErrBadFrame", name, err)
		}
	}
}

func FuzzParseSlabPacket(f *testing.F) {
	f.Add(SlabPacket{SlabMapRW, 1, 2 << 20}.Append(nil), 1)
	f.Add(SlabPacket{SlabUnmap, 7, 0}.Append(nil), 0)
	f.Add(SlabPacket{9, 7, 0}.Append(nil), 0)
	f.Add([]byte{1, 2, 3}, 1)
	f.Fuzz(func(t *testing.T, b []byte, files int) {
		p, err := ParseSlabPacket(b, files)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v is not ErrBadFrame", err)
			}
			return
		}
		if p.Slab == 0 || p.Size < 0 || p.Op < SlabMapRW || p.Op > SlabUnmap {
			t.Fatalf("accepted %+v", p)
		}
		if !bytes.Equal(p.Append(nil), b) {
			t.Fatalf("%+v re-encodes as % x, not % x", p, p.Append(nil), b)
		}
	})
}
