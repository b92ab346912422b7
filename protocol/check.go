package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxDepth bounds the nesting of arrays and maps in a message.
const MaxDepth = 16

var (
	errShort    = errors.New("msgpack: value cut short")
	errTrailing = errors.New("msgpack: trailing bytes after the message")
	errDepth    = fmt.Errorf("msgpack: nested deeper than %d", MaxDepth)
	errLead     = errors.New("msgpack: invalid lead byte 0xc1")
)

// Check walks one msgpack value in b without allocating and without
// recursion. It fails if b holds anything but exactly one value, if
// containers nest deeper than MaxDepth, or if an array, map, string, binary
// or extension header claims more elements or bytes than are left: every
// element takes at least one byte, so after Check a decoder allocates at
// most a small multiple of len(b).
func Check(b []byte) error {
	var stack [MaxDepth]uint64
	depth := 0
	left := uint64(1) // values still to read at this depth
	for {
		for left == 0 {
			if depth == 0 {
				if len(b) != 0 {
					return errTrailing
				}
				return nil
			}
			depth--
			left = stack[depth]
		}
		if len(b) == 0 {
			return errShort
		}
		left--
		lead := b[0]
		b = b[1:]
		var items, skip uint64
		switch {
		case lead <= 0x7f || lead >= 0xe0: // fixint
		case lead <= 0x8f: // fixmap
			items = 2 * uint64(lead&0x0f)
		case lead <= 0x9f: // fixarray
			items = uint64(lead & 0x0f)
		case lead <= 0xbf: // fixstr
			skip = uint64(lead & 0x1f)
		default:
			var err error
			items, skip, b, err = long(lead, b)
			if err != nil {
				return err
			}
		}
		if skip > uint64(len(b)) {
			return errShort
		}
		b = b[skip:]
		if items > 0 {
			if items > uint64(len(b)) {
				return fmt.Errorf("msgpack: a header claims %d elements, %d bytes left", items, len(b))
			}
			if depth == MaxDepth {
				return errDepth
			}
			stack[depth] = left
			depth++
			left = items
		}
	}
}

// long decodes the header of a value whose lead byte is 0xc0 or above:
// how many values it contains and how many bytes to skip.
func long(lead byte, b []byte) (items, skip uint64, rest []byte, err error) {
	size := func(n int) (uint64, bool) {
		if len(b) < n {
			return 0, false
		}
		var v uint64
		switch n {
		case 1:
			v = uint64(b[0])
		case 2:
			v = uint64(binary.BigEndian.Uint16(b))
		case 4:
			v = uint64(binary.BigEndian.Uint32(b))
		}
		b = b[n:]
		return v, true
	}
	ok := true
	switch lead {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
	case 0xc1:
		return 0, 0, nil, errLead
	case 0xc4, 0xd9: // bin8, str8
		skip, ok = size(1)
	case 0xc5, 0xda: // bin16, str16
		skip, ok = size(2)
	case 0xc6, 0xdb: // bin32, str32
		skip, ok = size(4)
	case 0xc7: // ext8: length, type
		skip, ok = size(1)
		skip++
	case 0xc8:
		skip, ok = size(2)
		skip++
	case 0xc9:
		skip, ok = size(4)
		skip++
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		skip = 4
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		skip = 8
	case 0xcc, 0xd0: // uint8, int8
		skip = 1
	case 0xcd, 0xd1: // uint16, int16
		skip = 2
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 plus the type byte
		skip = 1 + 1<<(lead-0xd4)
	case 0xdc: // array16
		items, ok = size(2)
	case 0xdd: // array32
		items, ok = size(4)
	case 0xde: // map16
		items, ok = size(2)
		items *= 2
	case 0xdf: // map32
		items, ok = size(4)
		items *= 2
	}
	if !ok {
		return 0, 0, nil, errShort
	}
	return items, skip, b, nil
}
