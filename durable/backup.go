package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/theus-run/theus/cas"
)

// A backup is a state file: the same format, the same checks. WriteBackup
// writes one from a store's Export; ReadBackup checks one in full;
// Install puts one in a state directory for a supervisor to start from.

// WriteBackup writes st as a state file at path, atomically: into a
// temporary file beside it, fsynced, then renamed over path and the
// directory fsynced. A crash leaves either the old file or the new one.
func WriteBackup(path string, st cas.State) (err error) {
	path, err = filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("durable: backup: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("durable: backup: %w", err)
	}
	tmp.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	db, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("durable: backup: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := initialize(tx); err != nil {
			return err
		}
		return fill(tx, st)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("durable: backup %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("durable: backup: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// fill writes st into an initialized, empty file.
func fill(tx *bolt.Tx, st cas.State) error {
	paths, seqs := tx.Bucket(bucketPaths), tx.Bucket(bucketSeqs)
	ops, order, meta := tx.Bucket(bucketOps), tx.Bucket(bucketOrder), tx.Bucket(bucketMeta)
	paths.FillPercent, order.FillPercent = 1, 1 // keys arrive in order
	entries := st.Entries
	if !slices.IsSortedFunc(entries, func(a, b cas.Entry) int { return strings.Compare(string(a.Path), string(b.Path)) }) {
		entries = slices.Clone(entries)
		slices.SortFunc(entries, func(a, b cas.Entry) int { return strings.Compare(string(a.Path), string(b.Path)) })
	}
	for _, e := range entries {
		key := []byte(e.Path)
		if err := paths.Put(key, pathRecord(key, e.Version, e.Value)); err != nil {
			return err
		}
	}
	for root, next := range st.Seqs {
		key := []byte(root)
		if err := seqs.Put(key, record(key, binary.LittleEndian.AppendUint64(nil, next))); err != nil {
			return err
		}
	}
	for i, o := range st.OpIDs {
		id := []byte(o.ID)
		if err := ops.Put(id, opRecord(id, o.Version, uint64(i), o.Digest, o.Result)); err != nil {
			return err
		}
		if err := order.Put(seqKey(uint64(i)), id); err != nil {
			return err
		}
	}
	u64 := func(k string, v uint64) error {
		return meta.Put([]byte(k), record([]byte(k), binary.LittleEndian.AppendUint64(nil, v)))
	}
	if err := u64("version", uint64(st.Version)); err != nil {
		return err
	}
	return u64("opseq", uint64(len(st.OpIDs)))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("durable: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("durable: fsync %s: %w", dir, err)
	}
	return nil
}

// ReadBackup checks the state file at path in full and returns what it
// holds, or ErrCorrupt or ErrNewerFormat; it changes nothing.
func ReadBackup(path string) (cas.State, error) {
	if _, err := os.Stat(path); err != nil {
		return cas.State{}, fmt.Errorf("durable: backup: %w", err)
	}
	return readAll(path)
}

// Install makes the state file in dir hold st, for a supervisor that
// starts from a backup. A state file already there is kept, renamed
// theus.db.replaced-<unix time>, whatever its condition (a corrupt one
// is a reason to restore); one that another supervisor holds is an
// ErrLocked and nothing changes. It returns the kept file's path, if any.
func Install(dir string, st cas.State) (kept string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("durable: state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err == nil {
		// A read-only open takes a shared lock: it fails while a writer
		// holds the file.
		if _, err := readAll(path); errors.Is(err, ErrLocked) {
			return "", err
		}
		kept = fmt.Sprintf("%s.replaced-%d", path, time.Now().Unix())
		if err := os.Rename(path, kept); err != nil {
			return "", fmt.Errorf("durable: keep the old state file: %w", err)
		}
	}
	if err := WriteBackup(path, st); err != nil {
		return kept, err
	}
	return kept, nil
}
