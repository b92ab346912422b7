package durable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// Format is the version of the file's layout this package writes and
// reads. A file of a newer format is refused, never read in part. Format
// 2 added the op id's digest to its record; a format 1 file is read (its
// op ids have unknown digests) and upgraded when a journal opens it.
const Format = 2

// The buckets of the file.
var (
	bucketMeta  = []byte("meta")  // "format", "version", "opseq"
	bucketPaths = []byte("paths") // path -> crc, version, value
	bucketSeqs  = []byte("seqs")  // LOG root -> crc, next entry number
	bucketOps   = []byte("ops")   // op id -> crc, version, seq, digest, result
	bucketOrder = []byte("order") // seq (big endian) -> op id: the window, oldest first
)

// Errors of Open. Each is wrapped with the details.
var (
	// ErrCorrupt: the state file fails a check (bbolt's own, or a record's
	// checksum). Nothing was changed.
	ErrCorrupt = errors.New("durable: state file is corrupt")
	// ErrNewerFormat: the file was written by a newer theus.
	ErrNewerFormat = errors.New("durable: state file is of a newer format")
	// ErrLocked: another supervisor holds the state file.
	ErrLocked = errors.New("durable: state file in use by another process")
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// record is [crc32c of key and rest][rest]: a flipped bit in a value, or a
// value under the wrong key, fails the check.
func record(key []byte, rest []byte) []byte {
	out := make([]byte, 4+len(rest))
	copy(out[4:], rest)
	binary.LittleEndian.PutUint32(out, checksum(key, rest))
	return out
}

func checksum(key, rest []byte) uint32 {
	c := crc32.Update(0, crcTable, key)
	return crc32.Update(c, crcTable, rest)
}

// open checks a record's checksum and returns its content.
func open(key, rec []byte) ([]byte, error) {
	if len(rec) < 4 {
		return nil, fmt.Errorf("%w: record for %q is %d bytes", ErrCorrupt, key, len(rec))
	}
	if binary.LittleEndian.Uint32(rec) != checksum(key, rec[4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch for %q", ErrCorrupt, key)
	}
	return rec[4:], nil
}

func pathRecord(path []byte, v cas.Version, value []byte) []byte {
	rest := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(v))
	return record(path, append(rest, value...))
}

// opHeader is the fixed part of an op id record: version, window
// position and, from format 2, the digest (zeros for unknown).
func opHeader(format uint64) int {
	if format < 2 {
		return 16
	}
	return 16 + len(cas.OpDigest{})
}

func opRecord(id []byte, v cas.Version, seq uint64, d cas.OpDigest, result []byte) []byte {
	rest := binary.LittleEndian.AppendUint64(make([]byte, 0, opHeader(Format)+len(result)), uint64(v))
	rest = binary.LittleEndian.AppendUint64(rest, seq)
	rest = append(rest, d[:]...)
	return record(id, append(rest, result...))
}

// readOp checks the record rec of op id in a file of format and returns
// it with its window position.
func readOp(format uint64, id, rec []byte) (o cas.OpRecord, seq uint64, err error) {
	b, err := open(id, rec)
	if err != nil {
		return o, 0, err
	}
	n := opHeader(format)
	if len(b) < n {
		return o, 0, fmt.Errorf("%w: record for op id %q is %d bytes, under %d", ErrCorrupt, id, len(b), n)
	}
	o = cas.OpRecord{ID: string(id), Version: cas.Version(binary.LittleEndian.Uint64(b)), Result: bytes.Clone(b[n:])}
	copy(o.Digest[:], b[16:n])
	return o, binary.LittleEndian.Uint64(b[8:]), nil
}

// fileFormat reads the format record.
func fileFormat(meta *bolt.Bucket) (uint64, error) {
	f, err := open([]byte("format"), meta.Get([]byte("format")))
	if err != nil || len(f) != 8 {
		return 0, fmt.Errorf("%w: no format record", ErrCorrupt)
	}
	got := binary.LittleEndian.Uint64(f)
	if got > Format {
		return 0, fmt.Errorf("%w: format %d, this supervisor reads up to %d", ErrNewerFormat, got, Format)
	}
	if got == 0 {
		return 0, fmt.Errorf("%w: format 0", ErrCorrupt)
	}
	return got, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// load reads and checks the whole file into a State.
func load(tx *bolt.Tx) (st cas.State, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return st, fmt.Errorf("%w: no meta bucket (not a theus state file?)", ErrCorrupt)
	}
	format, err := fileFormat(meta)
	if err != nil {
		return st, err
	}
	v, err := open([]byte("version"), meta.Get([]byte("version")))
	if err != nil || len(v) != 8 {
		return st, fmt.Errorf("%w: no version record", ErrCorrupt)
	}
	st.Version = cas.Version(binary.LittleEndian.Uint64(v))
	for _, name := range [][]byte{bucketPaths, bucketSeqs, bucketOps, bucketOrder} {
		if tx.Bucket(name) == nil {
			return st, fmt.Errorf("%w: no %s bucket", ErrCorrupt, name)
		}
	}
	err = tx.Bucket(bucketPaths).ForEach(func(k, rec []byte) error {
		b, err := open(k, rec)
		if err != nil || len(b) < 8 {
			return fmt.Errorf("%w: path %q: %v", ErrCorrupt, k, err)
		}
		p, err := contract.Parse(string(k))
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		st.Entries = append(st.Entries, cas.Entry{Path: p, Version: cas.Version(binary.LittleEndian.Uint64(b)), Value: bytes.Clone(b[8:])})
		return nil
	})
	if err != nil {
		return st, err
	}
	st.Seqs = map[contract.Path]uint64{}
	err = tx.Bucket(bucketSeqs).ForEach(func(k, rec []byte) error {
		b, err := open(k, rec)
		if err != nil || len(b) != 8 {
			return fmt.Errorf("%w: LOG root %q: %v", ErrCorrupt, k, err)
		}
		st.Seqs[contract.Path(k)] = binary.LittleEndian.Uint64(b)
		return nil
	})
	if err != nil {
		return st, err
	}
	ops := tx.Bucket(bucketOps)
	err = tx.Bucket(bucketOrder).ForEach(func(k, id []byte) error {
		o, seq, err := readOp(format, id, ops.Get(id))
		if err != nil {
			return err
		}
		if len(k) != 8 || seq != binary.BigEndian.Uint64(k) {
			return fmt.Errorf("%w: op id %q: not at its place in the window", ErrCorrupt, id)
		}
		st.OpIDs = append(st.OpIDs, o)
		return nil
	})
	return st, err
}

// initialize makes the buckets and meta records of a new file, or
// upgrades an older file to Format.
func initialize(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	for _, name := range [][]byte{bucketPaths, bucketSeqs, bucketOps, bucketOrder} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if meta.Get([]byte("format")) != nil {
		return upgrade(tx)
	}
	zero := make([]byte, 8)
	if err := meta.Put([]byte("format"), record([]byte("format"), binary.LittleEndian.AppendUint64(nil, Format))); err != nil {
		return err
	}
	if err := meta.Put([]byte("version"), record([]byte("version"), zero)); err != nil {
		return err
	}
	return meta.Put([]byte("opseq"), record([]byte("opseq"), zero))
}

// upgrade rewrites a format 1 file as format 2, in the caller's
// transaction: every op id record gets an unknown (zero) digest.
func upgrade(tx *bolt.Tx) error {
	meta, ops := tx.Bucket(bucketMeta), tx.Bucket(bucketOps)
	format, err := fileFormat(meta)
	if err != nil || format == Format {
		return err
	}
	type rewrite struct{ id, rec []byte }
	var all []rewrite
	err = ops.ForEach(func(id, rec []byte) error {
		o, seq, err := readOp(format, id, rec)
		if err != nil {
			return err
		}
		all = append(all, rewrite{bytes.Clone(id), opRecord(id, o.Version, seq, o.Digest, o.Result)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range all { // not inside ForEach: bbolt forbids changing a bucket it iterates
		if err := ops.Put(r.id, r.rec); err != nil {
			return err
		}
	}
	return meta.Put([]byte("format"), record([]byte("format"), binary.LittleEndian.AppendUint64(nil, Format)))
}
