package durable

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// dg is a digest that is easy to find in a file: the byte c, 32 times.
func dg(c byte) cas.OpDigest {
	var d cas.OpDigest
	for i := range d {
		d[i] = c
	}
	return d
}

// commitOp commits domain.<id> = 1 with op id id and digest d; it returns
// the commit's result (Duplicate for a repeat) once it is on disk.
func (o opened) commitOp(t *testing.T, id string, d cas.OpDigest) (cas.Result, error) {
	t.Helper()
	var delta cas.Delta
	delta.Set(contract.Path("domain."+id), []byte("1"))
	sn := o.s.Snapshot()
	defer sn.Release()
	r, err := o.s.Commit(context.Background(), sn.Version(), nil, delta, cas.Options{OpID: id, OpDigest: d, Result: []byte(`"` + id + `"`)})
	if err == nil {
		err = o.j.Wait(context.Background(), r.Version)
	}
	return r, err
}

// checkBound fails unless op id id is bound to digest d in s: d is a
// duplicate, another digest an op id conflict that changes nothing.
func checkBound(t *testing.T, where string, o opened, id string, d cas.OpDigest) {
	t.Helper()
	v := o.s.Version()
	if _, err := o.commitOp(t, id, dg('?')); !errors.Is(err, cas.ErrOpIDConflict) || o.s.Version() != v {
		t.Fatalf("%s: another call with %s: %v (version %d, was %d), want an op id conflict", where, id, err, o.s.Version(), v)
	}
	if r, err := o.commitOp(t, id, d); err != nil || !r.Duplicate || string(r.Result) != `"`+id+`"` {
		t.Fatalf("%s: the same call with %s: %+v %v, want a duplicate", where, id, r, err)
	}
}

// An op id's digest is on disk with it: after a reopen, in a backup and
// after the backup is installed, another call with the id is refused.
func TestOpDigestSurvivesReopenAndBackup(t *testing.T) {
	cfg := Config{Dir: t.TempDir()}
	o := openStore(t, cfg)
	for i, id := range []string{"a", "b"} {
		if _, err := o.commitOp(t, id, dg(byte('A'+i))); err != nil {
			t.Fatal(err)
		}
	}
	checkBound(t, "before", o, "a", dg('A'))
	if err := o.j.Close(); err != nil {
		t.Fatal(err)
	}

	r := openStore(t, cfg)
	checkBound(t, "after a reopen", r, "a", dg('A'))
	checkBound(t, "after a reopen", r, "b", dg('B'))
	file := filepath.Join(t.TempDir(), "backup.db")
	if err := WriteBackup(file, r.s.Export()); err != nil {
		t.Fatal(err)
	}
	if err := r.j.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := ReadBackup(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.OpIDs) != 2 || st.OpIDs[0].Digest != dg('A') || st.OpIDs[1].Digest != dg('B') {
		t.Fatalf("the backup's op ids: %+v", st.OpIDs)
	}
	dir := t.TempDir()
	if _, err := Install(dir, st); err != nil {
		t.Fatal(err)
	}
	b := openStore(t, Config{Dir: dir})
	defer b.j.Close()
	checkBound(t, "after a restore", b, "b", dg('B'))
}

// writeFormat1 rewrites the state file at path as the previous format
// wrote it: format 1, op id records without a digest.
func writeFormat1(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		ops := tx.Bucket(bucketOps)
		old := map[string][]byte{}
		ops.ForEach(func(id, rec []byte) error {
			o, seq, err := readOp(Format, id, rec)
			if err != nil {
				return err
			}
			rest := binary.LittleEndian.AppendUint64(nil, uint64(o.Version))
			rest = binary.LittleEndian.AppendUint64(rest, seq)
			old[string(id)] = record(id, append(rest, o.Result...))
			return nil
		})
		for id, rec := range old {
			if err := ops.Put([]byte(id), rec); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put([]byte("format"), record([]byte("format"), binary.LittleEndian.AppendUint64(nil, 1)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func formatOf(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var f uint64
	db.View(func(tx *bolt.Tx) error {
		f, err = fileFormat(tx.Bucket(bucketMeta))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A format 1 file (no digests) still loads: as a backup, read and left
// as it is; as a state file, upgraded to format 2 in place. Its op ids
// have unknown digests and accept a repeat from any call, as before; op
// ids committed after the upgrade are bound.
func TestFormat1FileLoads(t *testing.T) {
	cfg := Config{Dir: t.TempDir()}
	path := filepath.Join(cfg.Dir, FileName)
	o := openStore(t, cfg)
	if _, err := o.commitOp(t, "old", dg('O')); err != nil {
		t.Fatal(err)
	}
	want := dump(o.s)
	o.j.Close()
	writeFormat1(t, path)

	before := fileSum(t, path)
	st, err := ReadBackup(path)
	if err != nil {
		t.Fatalf("a format 1 file: %v", err)
	}
	if len(st.OpIDs) != 1 || st.OpIDs[0].Digest.Known() || string(st.OpIDs[0].Result) != `"old"` {
		t.Fatalf("format 1 op ids: %+v", st.OpIDs)
	}
	if fileSum(t, path) != before {
		t.Fatal("ReadBackup changed the file")
	}

	r := openStore(t, cfg)
	if got := dump(r.s); got != want {
		t.Fatalf("restored %s, want %s", got, want)
	}
	if res, err := r.commitOp(t, "old", dg('?')); err != nil || !res.Duplicate {
		t.Fatalf("an op id of a format 1 file, repeated: %+v %v, want a duplicate", res, err)
	}
	if _, err := r.commitOp(t, "new", dg('N')); err != nil {
		t.Fatal(err)
	}
	r.j.Close()
	if f := formatOf(t, path); f != Format {
		t.Fatalf("the file is of format %d after a journal opened it, want %d", f, Format)
	}
	n := openStore(t, cfg)
	defer n.j.Close()
	checkBound(t, "after the upgrade", n, "new", dg('N'))
	if res, err := n.commitOp(t, "old", dg('!')); err != nil || !res.Duplicate {
		t.Fatalf("the old op id after the upgrade: %+v %v", res, err)
	}
}

// A damaged digest stops Open with ErrCorrupt and leaves the file as it
// was: a flipped byte (the checksum catches it) and a record cut short
// inside its digest under a valid checksum.
func TestCorruptDigest(t *testing.T) {
	build := func(t *testing.T) (Config, string) {
		cfg := Config{Dir: t.TempDir()}
		o := openStore(t, cfg)
		if _, err := o.commitOp(t, "x", dg('D')); err != nil {
			t.Fatal(err)
		}
		o.j.Close()
		return cfg, filepath.Join(cfg.Dir, FileName)
	}
	damage := map[string]func(t *testing.T, path string){
		"flipped byte": func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			d := dg('D')
			n := 0
			for i := bytes.Index(b, d[:]); i >= 0; i = bytes.Index(b, d[:]) {
				b[i+7] ^= 0x01
				n++
			}
			if n == 0 {
				t.Fatal("digest not found in the file")
			}
			os.WriteFile(path, b, 0o600)
		},
		"cut short": func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.Update(func(tx *bolt.Tx) error {
				ops := tx.Bucket(bucketOps)
				b, err := open([]byte("x"), ops.Get([]byte("x")))
				if err != nil {
					t.Fatal(err)
				}
				return ops.Put([]byte("x"), record([]byte("x"), b[:16+20]))
			})
		},
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			cfg, path := build(t)
			f(t, path)
			before := fileSum(t, path)
			if _, _, err := Open(cfg); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			if _, err := ReadBackup(path); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadBackup: %v, want ErrCorrupt", err)
			}
			if fileSum(t, path) != before {
				t.Fatal("Open changed the file")
			}
		})
	}
}

// FuzzReadOp: any bytes under a valid checksum, of either format, are an
// op id record or ErrCorrupt, never a panic; a record opRecord wrote
// reads back the same.
func FuzzReadOp(f *testing.F) {
	f.Add([]byte("id"), uint64(2), opRecord([]byte("id"), 3, 4, dg('d'), []byte(`"r"`))[4:])
	f.Add([]byte("id"), uint64(1), make([]byte, 16))
	f.Add([]byte("id"), uint64(2), make([]byte, 47))
	f.Fuzz(func(t *testing.T, id []byte, format uint64, rest []byte) {
		format = 1 + format%Format
		o, seq, err := readOp(format, id, record(id, rest))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v, want ErrCorrupt", err)
			}
			if len(rest) >= opHeader(format) {
				t.Fatalf("a record of %d bytes refused: %v", len(rest), err)
			}
			return
		}
		if format == Format && !bytes.Equal(opRecord(id, o.Version, seq, o.Digest, o.Result)[4:], rest) {
			t.Fatalf("%x reads as %+v, which writes back differently", rest, o)
		}
	})
}
