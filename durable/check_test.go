package durable

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// sample is a small state file with every kind of page: branch pages,
// an overflow page, inline buckets, a freelist that lists pages, and
// what it holds (dumped).
type sample struct {
	file     []byte
	want     string
	pageSize int
	freelist uint64 // the newest meta's freelist page
}

func buildSample(t *testing.T) sample {
	t.Helper()
	dir := t.TempDir()
	o := openStore(t, Config{Dir: dir, OpIDWindow: 8})
	for i := range 12 {
		o.commit(t, "op-"+strconv.Itoa(i), func(d *cas.Delta) {
			for k := range 25 {
				d.Set(contract.Path(fmt.Sprintf("domain.p%03d", (i*25+k)%160)), []byte(`"`+strings.Repeat("v", 40+i)+`"`))
			}
			d.Append("domain.log", []byte(strconv.Itoa(i)))
		})
	}
	o.commit(t, "big", func(d *cas.Delta) { d.Set("domain.big", []byte(`"`+strings.Repeat("b", 9000)+`"`)) })
	o.commit(t, "", func(d *cas.Delta) { d.Delete("domain.p007") })
	want := stateDump(t, o.s.Export())
	if err := o.j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	s := sample{file: b, want: want, pageSize: int(native.Uint32(b[pageHeaderSize+8:]))}
	f, _ := os.Open(filepath.Join(dir, FileName))
	defer f.Close()
	var txid uint64
	for slot := range 2 {
		m, err := readMeta(f, slot, int64(slot*s.pageSize), int64(s.pageSize))
		if err != nil {
			t.Fatal(err)
		}
		if m.txid >= txid {
			txid, s.freelist = m.txid, m.freelist
		}
	}
	if n := freelistLen(b[int(s.freelist)*s.pageSize:]); n == 0 {
		t.Fatal("the sample's freelist is empty: it should list pages")
	}
	kinds := map[uint16]int{}
	overflow := false
	for p := 2; p < len(b)/s.pageSize; p++ {
		kinds[native.Uint16(b[p*s.pageSize+8:])]++
		overflow = overflow || native.Uint32(b[p*s.pageSize+12:]) > 0
	}
	if kinds[flagBranch] == 0 || kinds[flagLeaf] == 0 || !overflow {
		t.Fatalf("the sample has pages of types %v, overflow %v: want branch and leaf pages and an overflow", kinds, overflow)
	}
	return s
}

func freelistLen(p []byte) int { return int(native.Uint16(p[10:])) }

func stateDump(t *testing.T, st cas.State) string {
	t.Helper()
	s, err := cas.Restore(cas.Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	return dump(s) + fmt.Sprint(st.OpIDs, st.Seqs)
}

// damage is one way to break the sample; exact says that a file it
// leaves readable must read back as the sample (truncations and meta or
// freelist flips may not lose anything silently).
type damage struct {
	name  string
	apply func([]byte) []byte
	exact bool
}

func truncateAt(n int) damage {
	return damage{fmt.Sprintf("truncated to %d bytes", n), func(b []byte) []byte { return b[:n] }, true}
}

func flip(at int, mask byte, exact bool) damage {
	return damage{fmt.Sprintf("byte %d ^ %#x", at, mask), func(b []byte) []byte { b[at] ^= mask; return b }, exact}
}

// checkDamaged writes d applied to the sample as a state file, opens it
// and fails the test unless it is refused with a typed error the layout
// check found, or opens cleanly (then bbolt's own check agrees, and an
// exact damage lost nothing).
func checkDamaged(t *testing.T, s sample, dir string, d damage) (clean bool) {
	t.Helper()
	path := filepath.Join(dir, FileName)
	os.Remove(path)
	if err := os.WriteFile(path, d.apply(bytes.Clone(s.file)), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := ReadBackup(path)
	switch {
	case errors.Is(err, errBoltPanic):
		t.Fatalf("%s: bbolt panicked on a file the layout check let through: %v", d.name, err)
	case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerFormat):
		return false
	case err != nil:
		t.Fatalf("%s: %v, want ErrCorrupt or a clean open", d.name, err)
	}
	if d.exact {
		if got := stateDump(t, st); got != s.want {
			t.Fatalf("%s: read back %s, want %s", d.name, got, s.want)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("%s: accepted, but bbolt refuses it: %v", d.name, err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("%s: accepted, but bbolt's check says: %v", d.name, err)
		}
		return nil
	})
	return true
}

// TestDamagedStateFiles: a state file truncated at every page boundary
// and at random offsets, every byte of both meta pages flipped, every
// byte of the freelist flipped, and random bytes anywhere flipped: each
// is refused with ErrCorrupt, found by the layout check before bbolt maps
// the file, or (a byte that holds nothing) opens with nothing lost.
// Never a crash.
func TestDamagedStateFiles(t *testing.T) {
	s := buildSample(t)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(11, uint64(len(s.file))))
	var ds []damage
	for n := 0; n < len(s.file); n += s.pageSize {
		ds = append(ds, truncateAt(n))
	}
	for range 64 {
		ds = append(ds, truncateAt(r.IntN(len(s.file))))
	}
	for _, page := range []int{0, 1} {
		for i := range pageHeaderSize + metaSize + 16 {
			ds = append(ds, flip(page*s.pageSize+i, 0xff, true), flip(page*s.pageSize+i, 1<<r.IntN(8), true))
		}
	}
	fl := int(s.freelist) * s.pageSize
	for i := range pageHeaderSize + 8*freelistLen(s.file[fl:]) {
		ds = append(ds, flip(fl+i, 0xff, true), flip(fl+i, 1<<r.IntN(8), true))
	}
	for range 300 {
		ds = append(ds, flip(r.IntN(len(s.file)), byte(1+r.IntN(255)), false))
	}
	ds = append(ds, structureFlips(s)...)
	clean := 0
	for _, d := range ds {
		if checkDamaged(t, s, dir, d) {
			clean++
		}
	}
	t.Logf("%d damaged files of %d pages: %d refused, %d opened cleanly", len(ds), len(s.file)/s.pageSize, len(ds)-clean, clean)
}

// structureFlips breaks what the layout check reads in the tree's
// pages, every byte of it, where random flips rarely land: each branch
// page's count and elements (key offsets and sizes, child pages), each
// leaf element's flags, and each inline bucket's page header.
func structureFlips(s sample) []damage {
	var ds []damage
	ps := s.pageSize
	for p := 2; p < len(s.file)/ps; p++ {
		pg := s.file[p*ps:]
		typ, n := native.Uint16(pg[8:]), int(native.Uint16(pg[10:]))
		switch typ {
		case flagBranch:
			for i := 10; i < pageHeaderSize+n*elementSize; i++ {
				ds = append(ds, flip(p*ps+i, 0xff, false), flip(p*ps+i, 0x10, false))
			}
		case flagLeaf:
			for i := range n {
				e := pageHeaderSize + i*elementSize
				ds = append(ds, flip(p*ps+e, 0x02, false), flip(p*ps+e+3, 0x80, false))
				if native.Uint32(pg[e:]) != flagBucket {
					continue
				}
				v := e + int(native.Uint32(pg[e+4:])) + int(native.Uint32(pg[e+8:])) // the bucket's value
				if native.Uint64(pg[v:]) == 0 {                                      // an inline bucket: its page follows the header
					ds = append(ds, flip(p*ps+v+bucketHeader+8, 0x03, false), flip(p*ps+v+bucketHeader+10, 0xff, false))
				}
			}
		}
		p += int(native.Uint32(pg[12:])) // an overflow's pages hold no header
	}
	// The freelist one page short: that page is then neither in use nor
	// free (bbolt's own check calls it unreachable).
	fl := int(s.freelist) * ps
	ds = append(ds, damage{"the freelist's count one less", func(b []byte) []byte {
		native.PutUint16(b[fl+10:], native.Uint16(b[fl+10:])-1)
		return b
	}, true})
	return ds
}

// FuzzStateFile: any truncation or byte flip of a state file is refused
// with a typed error by the layout check or opens cleanly; never a crash.
func FuzzStateFile(f *testing.F) {
	f.Add(uint8(0), uint32(4096*3), byte(0))
	f.Add(uint8(1), uint32(16+40), byte(1))
	f.Add(uint8(1), uint32(4096+16+16), byte(0x80))
	f.Add(uint8(2), uint32(20), byte(0xff))
	var s sample
	f.Fuzz(func(t *testing.T, kind uint8, off uint32, mask byte) {
		if s.file == nil {
			s = buildSample(t)
		}
		n := int(off) % len(s.file)
		switch kind % 3 {
		case 0:
			checkDamaged(t, s, t.TempDir(), truncateAt(n))
		case 1:
			checkDamaged(t, s, t.TempDir(), flip(n, mask|1, false))
		case 2: // in the meta records or the freelist page
			at := int(off) % (2 * (pageHeaderSize + metaSize))
			at = at/(pageHeaderSize+metaSize)*s.pageSize + at%(pageHeaderSize+metaSize)
			if off&1 == 1 {
				at = int(s.freelist)*s.pageSize + int(off/2)%s.pageSize
			}
			checkDamaged(t, s, t.TempDir(), flip(at, mask|1, true))
		}
	})
}
