package durable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
)

// The layout check. bbolt maps the state file and trusts every page id
// and offset it reads there: a page past the end of the file is a fault
// (SIGSEGV or SIGBUS) that no recover catches, and a wild offset reads
// another page. So before bbolt maps a file, checkLayout reads it with
// plain reads and checks what bbolt would trust:
//
//   - the two meta pages (pages 0 and 1): magic, bbolt format version,
//     FNV-64a checksum, page header, a zero tail, the page size, each in
//     its slot (transaction id mod 2) and their transactions consecutive.
//     Both must be intact: bbolt would fall back to the other one
//     silently, losing the newest transaction, which may hold
//     acknowledged commits;
//   - the high-water mark (the page count): every page below it lies
//     within the file;
//   - every page the newest meta reaches: the root bucket, every bucket
//     and b+tree page under it, inline buckets, and the freelist: in
//     range, not referenced twice, of the right type, each element
//     inside its page and the keys in order;
//   - the freelist: every id in range, none twice, none in use, and with
//     the pages in use it covers every page below the high-water mark.
//
// bbolt's own tx.Check walks the same invariants, but through the map.

// bbolt's on-disk format (version 2), native byte order.
const (
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	metaSize       = 64 // after the page header, checksum last
	elementSize    = 16 // a branch or a leaf element
	bucketHeader   = 16 // root page u64, sequence u64

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	flagBucket   = 0x01 // a leaf element that is a bucket

	boltMagic   = 0xED0CDAED
	boltVersion = 2
	noFreelist  = ^uint64(0)

	minPageSize, maxPageSize = 1 << 10, 1 << 24
)

var native = binary.NativeEndian

// metaPage is one of the two meta pages.
type metaPage struct {
	pageSize       uint64
	root, freelist uint64
	hwm            uint64 // the high-water mark: pages [0, hwm) are the file's
	txid           uint64
}

// readMeta reads and checks the meta page in slot at off.
func readMeta(f *os.File, slot int, off, pageSize int64) (metaPage, error) {
	b := make([]byte, pageSize)
	if _, err := f.ReadAt(b, off); err != nil {
		return metaPage{}, fmt.Errorf("unreadable: %w", err)
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	sum := fnv.New64a()
	sum.Write(m[:metaSize-8])
	switch {
	case native.Uint32(m) != boltMagic:
		return metaPage{}, errors.New("no bbolt magic number")
	case native.Uint32(m[4:]) != boltVersion:
		return metaPage{}, fmt.Errorf("bbolt format version %d, want %d", native.Uint32(m[4:]), boltVersion)
	case native.Uint64(m[56:]) != sum.Sum64():
		return metaPage{}, errors.New("checksum mismatch")
	}
	mp := metaPage{pageSize: uint64(native.Uint32(m[8:])), root: native.Uint64(m[16:]), freelist: native.Uint64(m[32:]), hwm: native.Uint64(m[40:]), txid: native.Uint64(m[48:])}
	switch {
	case native.Uint64(b) != uint64(slot) || native.Uint16(b[8:]) != flagMeta || !allZero(b[10:pageHeaderSize]):
		return mp, fmt.Errorf("page header says page %d of type %#x, count %d, overflow %d", native.Uint64(b), native.Uint16(b[8:]), native.Uint16(b[10:]), native.Uint32(b[12:]))
	case mp.pageSize != uint64(pageSize):
		return mp, fmt.Errorf("page size %d, but the file's pages are %d bytes", mp.pageSize, pageSize)
	case mp.txid%2 != uint64(slot):
		return mp, fmt.Errorf("transaction %d in slot %d (transactions alternate between the slots)", mp.txid, slot)
	case !allZero(b[pageHeaderSize+metaSize:]):
		return mp, errors.New("bytes after the meta record are not zero")
	}
	return mp, nil
}

func allZero(b []byte) bool {
	return len(b) == 0 || b[0] == 0 && bytes.Equal(b[1:], b[:len(b)-1])
}

// pageSizeOf reads the page size that the meta page at off claims, 0 if
// it does not look like one.
func pageSizeOf(f *os.File, off int64) int64 {
	b := make([]byte, pageHeaderSize+metaSize)
	if _, err := f.ReadAt(b, off); err != nil {
		return 0
	}
	m := b[pageHeaderSize:]
	ps := int64(native.Uint32(m[8:]))
	if native.Uint32(m) != boltMagic || ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return 0
	}
	return ps
}

// checkLayout checks the file f holds (see above) and returns nil or an
// error that says what is wrong (the caller wraps it in ErrCorrupt).
func checkLayout(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return errors.New("the file is empty (0 bytes)")
	}
	// The page size is in meta page 0, at offset 0; if that one is
	// damaged, meta page 1 is at the page size, which only meta page 1
	// can say: try each possible one, as bbolt does.
	ps := pageSizeOf(f, 0)
	if ps == 0 {
		for s := int64(minPageSize); s <= maxPageSize && ps == 0; s *= 2 {
			if pageSizeOf(f, s) == s {
				ps = s
			}
		}
	}
	if ps == 0 {
		if size < 2*minPageSize {
			return fmt.Errorf("the file is %d bytes: too short to hold bbolt's two meta pages (not a state file, or truncated)", size)
		}
		return errors.New("neither meta page is readable: not a bbolt file, or its first pages are damaged")
	}
	if size < 2*ps {
		return fmt.Errorf("truncated: the file is %d bytes, less than its two meta pages of %d bytes", size, ps)
	}
	var metas [2]metaPage
	var errs [2]error
	for slot := range 2 {
		metas[slot], errs[slot] = readMeta(f, slot, int64(slot)*ps, ps)
	}
	switch {
	case errs[0] != nil && errs[1] != nil:
		return fmt.Errorf("both meta pages are damaged (page 0: %v; page 1: %v)", errs[0], errs[1])
	case errs[0] != nil || errs[1] != nil:
		bad := 0
		if errs[1] != nil {
			bad = 1
		}
		return fmt.Errorf("meta page %d is damaged (%v) while meta page %d (transaction %d) is intact: bbolt would silently fall back to that one and lose the newest transaction, which may hold acknowledged commits", bad, errs[bad], 1-bad, metas[1-bad].txid)
	case metas[0].txid+1 != metas[1].txid && metas[1].txid+1 != metas[0].txid:
		return fmt.Errorf("the meta pages hold transactions %d and %d, which are not consecutive", metas[0].txid, metas[1].txid)
	}
	pages := uint64(size / ps)
	for slot, m := range metas {
		if m.hwm > pages {
			return fmt.Errorf("truncated: the file is %d bytes, but its pages reach %d bytes (%d pages of %d, says meta page %d): the end is missing", size, m.hwm*uint64(ps), m.hwm, ps, slot)
		}
		if m.root < 2 || m.root >= m.hwm || (m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.hwm)) {
			return fmt.Errorf("meta page %d: root page %d or freelist page %d is outside pages [2, %d)", slot, m.root, m.freelist, m.hwm)
		}
	}
	cur := metas[0]
	if metas[1].txid > cur.txid {
		cur = metas[1]
	}
	w := &walker{f: f, pageSize: ps, hwm: cur.hwm, state: make([]byte, cur.hwm)}
	return w.walk(cur)
}
