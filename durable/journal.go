package durable

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/internal/golabel"
)

// Mode says when a commit is on disk, like Redis's appendfsync.
type Mode uint8

// The modes. The zero value is Sync.
const (
	// Sync: a commit is acknowledged only once it is on disk (fsynced);
	// commits that arrive together share one fsync.
	Sync Mode = iota
	// Async: commits are written and fsynced every Interval; a crash
	// loses the acknowledged commits of at most the last Interval and the
	// batch being written.
	Async
	// None: nothing is written; the state lives in memory only.
	None
)

func (m Mode) String() string {
	switch m {
	case Sync:
		return "sync"
	case Async:
		return "async"
	}
	return "none"
}

// ParseMode reads "sync", "async" or "none".
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{Sync, Async, None} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("durable: mode %q: want sync, async or none", s)
}

// Config describes a journal.
type Config struct {
	Dir      string        // the state directory (created 0700)
	Mode     Mode          // Sync or Async
	Interval time.Duration // Async's flush interval; default 100ms
	// OpIDWindow is how many op ids are kept (the store's window);
	// default cas.DefaultOpIDWindow.
	OpIDWindow int
	// MaxBatch caps the commits one transaction (one fsync) writes; 0 is
	// no cap. 1 turns group commit off: the one-fsync-per-commit baseline
	// the benchmarks compare against.
	MaxBatch int
	// Fault, when set, is called at "before-write", "in-tx" (inside the
	// transaction, after every change is written) and "after-sync"; an
	// error it returns fails the batch as a disk error would. For tests.
	Fault func(point string) error
	// Flushed, when set, is told of every batch written (see Flush), from
	// the journal's goroutine, after the commits it holds are durable.
	Flushed func(Flush)
	Log     zerolog.Logger
}

// FileName is the state file's name in its directory.
const FileName = "theus.db"

// ErrFailed is wrapped by Wait once a batch could not be written: the
// journal accepts nothing more, and nothing after the last durable
// version may be acknowledged.
var ErrFailed = errors.New("durable: the journal failed")

// Journal writes commits to the state file.
type Journal struct {
	cfg  Config
	db   *bolt.DB
	lock *dirLock // held until Close: no other journal opens the directory
	path string
	id   fileID // the file db writes: path must keep naming it
	// pending notes the backups in progress (WriteBackup).
	pending *pending
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	// The notifier (Notify): kicked by notify, stopped by notifyStop,
	// closes notified when it returns.
	notify, notifyStop, notified chan struct{}

	closing  sync.Once
	closeErr error // Close's result, for every call

	// onDisk is durable, for Durable's readers: no lock (the execute
	// path asks it for every commit under durability sync).
	onDisk atomic.Uint64

	mu      sync.Mutex
	queue   []cas.Commit
	durable cas.Version
	err     error
	changed chan struct{} // closed and replaced when durable or err change
	failed  chan struct{} // closed when err is set
	opseq   uint64        // the next op id's place in the window
	ops     int           // op ids in the window
	batches uint64        // transactions (fsyncs) so far
	commits uint64        // commits written so far
	closed  bool          // Close has stopped the committer
	waiters []waiting     // Notify's, until their version is durable
	ready   []waiting     // for the notifier to call
}

// Stats counts what the journal wrote: Commits in Batches transactions,
// one fsync each; Commits/Batches is the group-commit factor.
type Stats struct {
	Durable          cas.Version
	Batches, Commits uint64
}

// Stats returns the journal's counters.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Stats{Durable: j.durable, Batches: j.batches, Commits: j.commits}
}

// Open opens (or creates) the state file in cfg.Dir, checks all of it
// and returns the journal and the state to restore. A file that is
// corrupt, of a newer format, or held by another process is an error
// (ErrCorrupt, ErrNewerFormat, ErrLocked) and is left as it was: it is
// first opened read-only and read in full, and written only after that.
// The directory must be this user's and writable by no one else
// (ErrUnsafeDir); the journal holds it locked until Close, so a second
// Open on it is an ErrLocked even after theus.db was renamed over.
func Open(cfg Config) (*Journal, cas.State, error) {
	if cfg.Mode != Sync && cfg.Mode != Async {
		return nil, cas.State{}, fmt.Errorf("durable: open in mode %s", cfg.Mode)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.OpIDWindow == 0 {
		cfg.OpIDWindow = cas.DefaultOpIDWindow
	}
	if err := openDir(cfg.Dir); err != nil {
		return nil, cas.State{}, err
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, cas.State{}, err
	}
	j, st, err := open1(cfg, lock)
	if err != nil {
		lock.release()
		return nil, cas.State{}, err
	}
	go j.run()
	go j.notifier()
	return j, st, nil
}

// open1 is Open once the state directory is locked.
func open1(cfg Config, lock *dirLock) (*Journal, cas.State, error) {
	if removed := append(removeStaleTemps(cfg.Dir, FileName), removeInterrupted(cfg.Dir)...); len(removed) > 0 {
		cfg.Log.Warn().Strs("files", removed).Msg("removed the temporary files of a state file or backup write that was interrupted")
	}
	path := filepath.Join(cfg.Dir, FileName)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		// Created whole or not at all: a crash never leaves an empty
		// state file, which would be refused.
		if err := writeFile(cfg.Dir, FileName, cas.State{}); err != nil {
			return nil, cas.State{}, err
		}
	}
	st, id, err := readAll(path)
	if err != nil {
		return nil, cas.State{}, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, OpenFile: openIf(id)})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, cas.State{}, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, cas.State{}, fmt.Errorf("durable: open %s: %w", path, err)
	}
	if err := db.Update(initialize); err != nil {
		db.Close()
		return nil, cas.State{}, fmt.Errorf("durable: initialize %s: %w", path, err)
	}
	j := &Journal{cfg: cfg, db: db, lock: lock, path: path, id: id, pending: &pending{dir: cfg.Dir}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), changed: make(chan struct{}), failed: make(chan struct{}), durable: st.Version,
		notify: make(chan struct{}, 1), notifyStop: make(chan struct{}), notified: make(chan struct{})}
	j.onDisk.Store(uint64(st.Version))
	err = db.View(func(tx *bolt.Tx) error {
		b, err := open([]byte("opseq"), tx.Bucket(bucketMeta).Get([]byte("opseq")))
		if err != nil || len(b) != 8 {
			return fmt.Errorf("%w: no opseq record", ErrCorrupt)
		}
		j.opseq = binary.LittleEndian.Uint64(b)
		j.ops = tx.Bucket(bucketOrder).Stats().KeyN
		return nil
	})
	if err != nil {
		db.Close()
		return nil, cas.State{}, err
	}
	return j, st, nil
}

// readAll opens path read-only and reads all of it: the layout first
// (checkLayout: bbolt maps only a file whose every page it will reach
// lies within the file), then bbolt's view, every record checked. A
// panic of bbolt's on a page the layout check let through, or a fault,
// is an ErrCorrupt too. It returns what the file holds and which file
// it read.
func readAll(path string) (st cas.State, id fileID, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) // a named pipe must not block
	if err != nil {
		return st, id, fmt.Errorf("durable: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return st, id, fmt.Errorf("durable: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return st, id, fmt.Errorf("%w: %s is %s, not a regular file", ErrCorrupt, path, kind(fi.Mode()))
	}
	id = idOf(fi)
	// Shared, as bbolt's read-only open: a journal writing it holds it
	// exclusively.
	if err := flock(f, unix.LOCK_SH); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return st, id, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return st, id, fmt.Errorf("durable: lock %s: %w", path, err)
	}
	if err := checkLayout(f); err != nil {
		return st, id, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout, OpenFile: openIf(id)})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return st, id, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return st, id, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err) // bbolt's invalid, checksum, version errors and the like
	}
	defer db.Close()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %w: %v", ErrCorrupt, path, errBoltPanic, r)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		var e error
		st, e = load(tx)
		return e
	})
	if err != nil {
		return cas.State{}, id, fmt.Errorf("%s: %w", path, err)
	}
	return st, id, nil
}

// errBoltPanic marks an ErrCorrupt that bbolt found by panicking (or
// faulting) on a page: one the layout check should have refused.
var errBoltPanic = errors.New("bbolt panicked")

// openIf is a bbolt OpenFile that opens only the file id: bbolt maps
// the very file that was checked, not one renamed over its name since.
func openIf(id fileID) func(string, int, os.FileMode) (*os.File, error) {
	return func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		if fi, err := f.Stat(); err != nil || idOf(fi) != id {
			f.Close()
			return nil, fmt.Errorf("%s was replaced by another file while it was opened", name)
		}
		return f, nil
	}
}

// Append queues a commit (cas.Config.Committed: under the store's lock,
// in version order).
func (j *Journal) Append(c cas.Commit) {
	j.mu.Lock()
	j.queue = append(j.queue, c)
	j.mu.Unlock()
	if j.cfg.Mode == Sync {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
}

// Wait returns once version v is on disk, or with ErrFailed, or ctx's
// error. In Async mode it waits for nothing but a failure.
func (j *Journal) Wait(ctx context.Context, v cas.Version) error {
	for {
		j.mu.Lock()
		durable, err, ch := j.durable, j.err, j.changed
		j.mu.Unlock()
		if err != nil {
			return err
		}
		if durable >= v || j.cfg.Mode == Async {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Durable returns the newest version on disk. It takes no lock.
func (j *Journal) Durable() cas.Version { return cas.Version(j.onDisk.Load()) }

// Failed is closed once the journal has failed; Err says why.
func (j *Journal) Failed() <-chan struct{} { return j.failed }

// Err returns why the journal failed, or nil.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Close writes what is queued, closes the file and lets another
// process open the state directory. It may be called more than once:
// later calls return the first one's result.
func (j *Journal) Close() error {
	j.closing.Do(func() {
		close(j.stop)
		<-j.done
		j.mu.Lock()
		j.closed = true
		j.wake(fmt.Errorf("%w before the version was written", ErrClosed))
		j.mu.Unlock()
		close(j.notifyStop)
		<-j.notified
		j.closeErr = errors.Join(j.Err(), j.db.Close(), j.pending.close(), j.lock.release())
	})
	return j.closeErr
}

// stillNamed checks that the state file's name still names the file the
// journal writes. If someone renamed another file over it (or removed
// it), what the journal writes is lost at the next start: nothing more
// may be acknowledged.
func (j *Journal) stillNamed() error {
	fi, err := os.Stat(j.path)
	switch {
	case err != nil:
		return fmt.Errorf("durable: the state file is gone (%w): a restart would not find what the journal writes", err)
	case idOf(fi) != j.id:
		return fmt.Errorf("durable: %s was replaced by another file: a restart would read that one, not what the journal writes", j.path)
	}
	return nil
}

// run is the committer: it writes the queue in batches, one transaction
// (one fsync) per batch, until Close; after a failure it writes nothing.
func (j *Journal) run() {
	defer close(j.done)
	golabel.Set(golabel.Journal, -1)
	var tick <-chan time.Time
	if j.cfg.Mode == Async {
		t := time.NewTicker(j.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		stopping := false
		select {
		case <-j.kick:
		case <-tick:
		case <-j.stop:
			stopping = true
		}
		if !j.flush() || stopping {
			return
		}
	}
}

// flush writes the queue; false once the journal has failed.
func (j *Journal) flush() bool {
	for {
		more, ok := j.flush1()
		if !ok || !more {
			return ok
		}
	}
}

// flush1 writes one batch of at most MaxBatch commits: more says whether
// the queue still holds some, ok false once the journal has failed.
func (j *Journal) flush1() (more, ok bool) {
	j.mu.Lock()
	batch := j.queue
	j.queue = nil
	if n := j.cfg.MaxBatch; n > 0 && len(batch) > n {
		batch, j.queue = batch[:n:n], batch[n:]
	}
	more = len(j.queue) > 0
	j.mu.Unlock()
	if len(batch) == 0 {
		return false, true
	}
	start := time.Now()
	err := j.write(batch)
	took := time.Since(start)
	j.mu.Lock()
	if err != nil {
		j.err = fmt.Errorf("%w: %w", ErrFailed, err)
		close(j.failed)
	} else {
		j.durable = batch[len(batch)-1].Version
		j.onDisk.Store(uint64(j.durable))
		j.batches++
		j.commits += uint64(len(batch))
	}
	j.wake(j.err)
	close(j.changed)
	j.changed = make(chan struct{})
	j.mu.Unlock()
	if err != nil {
		j.cfg.Log.Error().Err(err).Uint64("durable", uint64(j.Durable())).Msg("the journal failed: nothing more will be acknowledged")
		return false, false
	}
	if j.cfg.Flushed != nil {
		j.cfg.Flushed(Flush{Commits: len(batch), Bytes: batchBytes(batch), Took: took, At: start.Add(took)})
	}
	return more, true
}

func (j *Journal) fault(point string) error {
	if j.cfg.Fault == nil {
		return nil
	}
	return j.cfg.Fault(point)
}

// write puts a batch in one transaction: bbolt writes its pages, fsyncs,
// writes the meta page and fsyncs again before Update returns.
func (j *Journal) write(batch []cas.Commit) error {
	if err := j.fault("before-write"); err != nil {
		return err
	}
	err := j.db.Update(func(tx *bolt.Tx) error {
		paths, seqs := tx.Bucket(bucketPaths), tx.Bucket(bucketSeqs)
		ops, order, meta := tx.Bucket(bucketOps), tx.Bucket(bucketOrder), tx.Bucket(bucketMeta)
		for _, c := range batch {
			for _, ch := range c.Changes {
				key := []byte(ch.Path)
				var err error
				if ch.Deleted {
					err = paths.Delete(key)
				} else {
					err = paths.Put(key, pathRecord(key, c.Version, ch.Value))
				}
				if err == nil && ch.Root != "" {
					root := []byte(ch.Root)
					err = seqs.Put(root, record(root, binary.LittleEndian.AppendUint64(nil, ch.Seq+1)))
				}
				if err != nil {
					return err
				}
			}
			if c.OpID == "" {
				continue
			}
			id := []byte(c.OpID)
			if old := ops.Get(id); old != nil { // reused after it left the window
				if b, err := open(id, old); err == nil && len(b) >= 16 {
					if err := order.Delete(seqKey(binary.LittleEndian.Uint64(b[8:]))); err != nil {
						return err
					}
					j.ops--
				}
			}
			if err := ops.Put(id, opRecord(id, c.Version, j.opseq, c.OpDigest, c.Result)); err != nil {
				return err
			}
			if err := order.Put(seqKey(j.opseq), id); err != nil {
				return err
			}
			j.opseq++
			j.ops++
		}
		// The window: the oldest op ids go, as they do from the store's.
		cur := order.Cursor()
		for k, id := cur.First(); k != nil && j.ops > j.cfg.OpIDWindow; k, id = cur.First() {
			if err := ops.Delete(id); err != nil {
				return err
			}
			if err := cur.Delete(); err != nil {
				return err
			}
			j.ops--
		}
		last := batch[len(batch)-1].Version
		if err := meta.Put([]byte("version"), record([]byte("version"), binary.LittleEndian.AppendUint64(nil, uint64(last)))); err != nil {
			return err
		}
		if err := meta.Put([]byte("opseq"), record([]byte("opseq"), binary.LittleEndian.AppendUint64(nil, j.opseq))); err != nil {
			return err
		}
		return j.fault("in-tx")
	})
	if err != nil {
		return err
	}
	if err := j.stillNamed(); err != nil {
		return err
	}
	return j.fault("after-sync")
}
