package durable

import (
	"bytes"
	"fmt"
	"os"
)

// A walker reads the pages of a bbolt file that one meta page reaches,
// with plain reads, and checks each before it is followed (see
// checkLayout).
type walker struct {
	f        *os.File
	pageSize int64
	hwm      uint64
	state    []byte // per page: unseen, inUse or free
	free     [][]byte
}

const (
	unseen byte = iota
	inUse
	free
)

var stateName = [...]string{unseen: "unseen", inUse: "in use", free: "free"}

// walk checks the freelist and the tree of m, then that every page is
// either in use or free.
func (w *walker) walk(m metaPage) error {
	w.state[0], w.state[1] = inUse, inUse
	if m.freelist != noFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return err
		}
	}
	if err := w.tree(m.root, nil, nil); err != nil {
		return err
	}
	if m.freelist == noFreelist {
		return nil // bbolt rebuilds it from the tree
	}
	for id, s := range w.state {
		if s == unseen {
			return fmt.Errorf("page %d is neither in use nor on the freelist", id)
		}
	}
	return nil
}

// page reads page id and its overflow pages, checking that it is what
// it says it is and lies below the high-water mark. The caller hands
// the bytes back with put once it no longer needs them.
func (w *walker) page(id uint64, as byte) ([]byte, error) {
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("a reference to page %d, outside pages [2, %d)", id, w.hwm)
	}
	off := int64(id) * w.pageSize
	b := w.get()
	if _, err := w.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	n := uint64(native.Uint32(b[12:])) + 1
	switch {
	case native.Uint64(b) != id:
		return nil, fmt.Errorf("page %d says it is page %d", id, native.Uint64(b))
	case n > w.hwm-id:
		return nil, fmt.Errorf("page %d spans %d pages, past the high-water mark %d", id, n, w.hwm)
	}
	for p := id; p < id+n; p++ {
		if w.state[p] != unseen {
			return nil, fmt.Errorf("page %d is reached twice (%s, then %s)", p, stateName[w.state[p]], stateName[as])
		}
		w.state[p] = as
	}
	if n > 1 {
		big := make([]byte, int64(n)*w.pageSize)
		copy(big, b)
		w.put(b)
		if _, err := w.f.ReadAt(big[w.pageSize:], off+w.pageSize); err != nil {
			return nil, fmt.Errorf("page %d: %w", id, err)
		}
		return big, nil
	}
	return b, nil
}

// get and put keep the page buffers for reuse: one per level of the
// tree is enough.
func (w *walker) get() []byte {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b
	}
	return make([]byte, w.pageSize)
}

func (w *walker) put(b []byte) {
	if int64(len(b)) == w.pageSize {
		w.free = append(w.free, b)
	}
}

// freelist marks the pages the freelist page id lists as free.
func (w *walker) freelist(id uint64) error {
	b, err := w.page(id, inUse)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	defer w.put(b)
	if t := native.Uint16(b[8:]); t != flagFreelist {
		return fmt.Errorf("freelist page %d has type %#x", id, t)
	}
	ids := b[pageHeaderSize:]
	n := uint64(native.Uint16(b[10:]))
	if n == 0xFFFF { // the count overflowed into the first element
		if len(ids) < 8 {
			return fmt.Errorf("freelist page %d: no room for its count", id)
		}
		n, ids = native.Uint64(ids), ids[8:]
	}
	if n > uint64(len(ids)/8) {
		return fmt.Errorf("freelist page %d lists %d pages, it has room for %d", id, n, len(ids)/8)
	}
	for i := range n {
		p := native.Uint64(ids[8*i:])
		switch {
		case p < 2 || p >= w.hwm:
			return fmt.Errorf("freelist page %d lists page %d, outside pages [2, %d)", id, p, w.hwm)
		case w.state[p] != unseen:
			return fmt.Errorf("freelist page %d lists page %d, which is %s", id, p, stateName[w.state[p]])
		}
		w.state[p] = free
	}
	return nil
}

// tree checks the b+tree page id whose keys must lie in [lo, hi) (nil:
// unbounded) and every bucket under it.
func (w *walker) tree(id uint64, lo, hi []byte) error {
	b, err := w.page(id, inUse)
	if err != nil {
		return err
	}
	defer w.put(b)
	switch t := native.Uint16(b[8:]); t {
	case flagLeaf:
		return w.leaf(id, nil, b, lo, hi)
	case flagBranch:
	default:
		return fmt.Errorf("page %d has type %#x where a branch or leaf page belongs", id, t)
	}
	n := int(native.Uint16(b[10:]))
	if n == 0 || pageHeaderSize+n*elementSize > len(b) {
		return fmt.Errorf("branch page %d: %d elements in %d bytes", id, n, len(b))
	}
	keys := make([][]byte, n+1)
	children := make([]uint64, n)
	for i := range n {
		e := b[pageHeaderSize+i*elementSize:]
		key, err := span(b, pageHeaderSize+i*elementSize, native.Uint32(e), int64(native.Uint32(e[4:])))
		if err != nil {
			return fmt.Errorf("branch page %d, element %d: %w", id, i, err)
		}
		if err := inOrder(key, keys[max(i-1, 0)], i > 0, lo, hi); err != nil {
			return fmt.Errorf("branch page %d, element %d: %w", id, i, err)
		}
		keys[i], children[i] = key, native.Uint64(e[8:])
	}
	keys[n] = hi
	for i, c := range children {
		if err := w.tree(c, keys[i], keys[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// leaf checks the elements of a leaf page, page id's bytes or (id 0)
// the inline page of bucket inline, and follows the buckets among them.
func (w *walker) leaf(id uint64, inline, b, lo, hi []byte) error {
	where := func() string {
		if id == 0 {
			return fmt.Sprintf("the inline page of bucket %q", inline)
		}
		return fmt.Sprintf("leaf page %d", id)
	}
	n := int(native.Uint16(b[10:]))
	if pageHeaderSize+n*elementSize > len(b) {
		return fmt.Errorf("%s: %d elements in %d bytes", where(), n, len(b))
	}
	var prev []byte
	for i := range n {
		off := pageHeaderSize + i*elementSize
		e := b[off:]
		flags, pos, ksize, vsize := native.Uint32(e), native.Uint32(e[4:]), native.Uint32(e[8:]), native.Uint32(e[12:])
		kv, err := span(b, off, pos, int64(ksize)+int64(vsize))
		if err != nil {
			return fmt.Errorf("%s, element %d: %w", where(), i, err)
		}
		key, value := kv[:ksize], kv[ksize:]
		if err := inOrder(key, prev, i > 0, lo, hi); err != nil {
			return fmt.Errorf("%s, element %d: %w", where(), i, err)
		}
		prev = key
		switch flags {
		case 0:
		case flagBucket:
			if err := w.bucket(key, value); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s, element %d: flags %#x", where(), i, flags)
		}
	}
	return nil
}

// bucket follows a bucket's value: its root page, or its inline page.
func (w *walker) bucket(name, v []byte) error {
	if len(v) < bucketHeader {
		return fmt.Errorf("bucket %q: a header of %d bytes", name, len(v))
	}
	if root := native.Uint64(v); root != 0 {
		return w.tree(root, nil, nil)
	}
	in := v[bucketHeader:]
	if len(in) < pageHeaderSize || native.Uint16(in[8:]) != flagLeaf {
		return fmt.Errorf("bucket %q: an inline page that is not a leaf", name)
	}
	return w.leaf(0, name, in, nil, nil)
}

// span returns the n bytes at off+pos in b, or an error if they are not
// all within b.
func span(b []byte, off int, pos uint32, n int64) ([]byte, error) {
	start := int64(off) + int64(pos)
	end := start + n
	if end > int64(len(b)) {
		return nil, fmt.Errorf("bytes [%d, %d) outside its %d", start, end, len(b))
	}
	return b[start:end], nil
}

// inOrder checks that key follows prev (if hasPrev) and lies in [lo, hi).
func inOrder(key, prev []byte, hasPrev bool, lo, hi []byte) error {
	switch {
	case hasPrev && bytes.Compare(prev, key) >= 0:
		return fmt.Errorf("key %q after %q: keys out of order", key, prev)
	case lo != nil && bytes.Compare(key, lo) < 0:
		return fmt.Errorf("key %q below its parent's %q", key, lo)
	case hi != nil && bytes.Compare(key, hi) >= 0:
		return fmt.Errorf("key %q not below the next parent key %q", key, hi)
	}
	return nil
}
