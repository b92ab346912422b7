package durable

import (
	"encoding/binary"
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
// A path that must not be replaced (see backupTarget) is an
// ErrBadTarget and nothing changes. Temporary files that an earlier
// backup to the same path left when it was killed are removed first.
func WriteBackup(path string, st cas.State) error {
	dir, name, err := backupTarget(path)
	if err != nil {
		return err
	}
	removeStaleTemps(dir, name)
	return writeFile(dir, name, st)
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
	st, _, err := readAll(path)
	return st, err
}

// Install makes the state file in dir hold st, for a supervisor that
// starts from a backup. A state file already there is kept, renamed
// theus.db.replaced-<unix time>, whatever its condition (a corrupt one
// is a reason to restore); a directory that another supervisor holds is
// an ErrLocked and nothing changes. It returns the kept file's path, if
// any.
func Install(dir string, st cas.State) (kept string, err error) {
	if err := openDir(dir); err != nil {
		return "", err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return "", err
	}
	defer lock.release()
	removeStaleTemps(dir, FileName)
	path := filepath.Join(dir, FileName)
	if _, err := os.Lstat(path); err == nil {
		kept = fmt.Sprintf("%s.replaced-%d", path, time.Now().Unix())
		if err := os.Rename(path, kept); err != nil {
			return "", fmt.Errorf("durable: keep the old state file: %w", err)
		}
	}
	return kept, writeFile(dir, FileName, st)
}
