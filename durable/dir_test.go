package durable

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/cas"
)

// replaceName renames a copy of path over path, as a backup written
// onto the state file once did: the name gets a new file, the journal
// keeps the old one.
func replaceName(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".copy"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestLockFollowsTheDirectory: once another file was renamed over
// theus.db (or it was removed), a second Open on the directory is still
// refused, and the journal acknowledges nothing more: what it writes
// would be lost at the next start.
func TestLockFollowsTheDirectory(t *testing.T) {
	for _, how := range []string{"replaced", "removed"} {
		t.Run(how, func(t *testing.T) {
			cfg := Config{Dir: t.TempDir()}
			o := openStore(t, cfg)
			o.commit(t, "op-1", func(d *cas.Delta) { d.Set("domain.a", []byte("1")) })
			path := filepath.Join(cfg.Dir, FileName)
			if how == "replaced" {
				replaceName(t, path)
			} else {
				os.Remove(path)
				// Nor may a backup put a file at the name meanwhile.
				if err := WriteBackup(path, o.s.Export()); !errors.Is(err, ErrBadTarget) || !strings.Contains(err.Error(), "running supervisor") {
					t.Fatalf("a backup onto the removed state file's name: %v, want ErrBadTarget", err)
				}
			}
			if j, _, err := Open(cfg); !errors.Is(err, ErrLocked) {
				if err == nil {
					j.Close()
				}
				t.Fatalf("a second Open after the name was %s: %v, want ErrLocked", how, err)
			}
			var d cas.Delta
			d.Set("domain.a", []byte("2"))
			sn := o.s.Snapshot()
			r, err := o.s.Commit(context.Background(), sn.Version(), nil, d, cas.Options{OpID: "op-2"})
			sn.Release()
			if err != nil {
				t.Fatal(err)
			}
			err = o.j.Wait(context.Background(), r.Version)
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), how) && !strings.Contains(err.Error(), "gone") {
				t.Fatalf("a commit after the state file was %s: %v, want ErrFailed saying so", how, err)
			}
			o.j.Close()
			if how == "removed" {
				return
			}
			// The file now at the name is what a restart reads: op-1, not op-2.
			r2 := openStore(t, cfg)
			defer r2.j.Close()
			if _, _, ok := r2.s.Lookup("op-1"); !ok {
				t.Fatal("op-1 is not in the file that replaced the state file")
			}
			if _, _, ok := r2.s.Lookup("op-2"); ok {
				t.Fatal("op-2 was acknowledged into a file no restart reads")
			}
		})
	}
}

// TestUnsafeStateDirectory: a state directory that others may write in
// is refused, as the socket's is; one they may only read is not.
func TestUnsafeStateDirectory(t *testing.T) {
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o700, true}, {0o750, true}, {0o755, true}, {0o770, false}, {0o777, false}, {os.ModeSticky | 0o777, false}, {0o702, false}} {
		t.Run(c.mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			j, _, err := Open(Config{Dir: dir})
			if err == nil {
				j.Close()
			}
			if c.ok != (err == nil) || !c.ok && !errors.Is(err, ErrUnsafeDir) {
				t.Fatalf("Open in a directory of mode %v: %v", c.mode, err)
			}
			if _, err := Install(dir, cas.State{}); c.ok != (err == nil) {
				t.Fatalf("Install in a directory of mode %v: %v", c.mode, err)
			}
		})
	}
	t.Run("another user's", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a directory away")
		}
		dir := t.TempDir()
		if err := os.Chown(dir, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Open(Config{Dir: dir}); !errors.Is(err, ErrUnsafeDir) || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Fatalf("Open in another user's directory: %v", err)
		}
	})
}

// TestStaleTempsRemoved: the temporary files of a state file write that
// was killed (unlocked, named as the writer names them) are removed when
// a journal opens the directory and when a backup is written to the same
// name; anything else, and a temporary file a live writer holds, stays.
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	plant := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := []string{plant(".theus.db.tmp-3ifjx1ac0k2w"), plant(".theus.db.tmp-123456789")}
	held := plant(".theus.db.tmp-held0")
	f, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	kept := []string{held, plant(".theus.db.tmp-"), plant(".theus.db.tmp-ABC"), plant("theus.db.tmp-1"), plant(".b.db.tmp-1"), plant(".theus.db.tmp-1.x")}
	os.Mkdir(filepath.Join(dir, ".theus.db.tmp-dir"), 0o700)
	kept = append(kept, filepath.Join(dir, ".theus.db.tmp-dir"))

	j, _, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for _, p := range stale {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after Open (%v)", filepath.Base(p), err)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}

	// A backup removes those of its own name in its own directory.
	out := t.TempDir()
	oldB := filepath.Join(out, ".b.db.tmp-zz9")
	other := filepath.Join(out, ".c.db.tmp-zz9")
	for _, p := range []string{oldB, other} {
		os.WriteFile(p, nil, 0o600)
	}
	if err := WriteBackup(filepath.Join(out, "b.db"), cas.State{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(oldB); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale temporary file of b.db is still there (%v)", err)
	}
	if _, err := os.Lstat(other); err != nil {
		t.Errorf("the temporary file of another name was removed: %v", err)
	}
	es, _ := os.ReadDir(out)
	if len(es) != 2 {
		t.Errorf("after the backup %s holds %d files, want b.db and .c.db.tmp-zz9", out, len(es))
	}
}

// TestInterruptedBackupCleanedAtStart: a backup that a kill interrupted
// leaves its temporary file beside its target, wherever that is; the
// journal noted the backup in the state directory, so the next start
// removes that file (and only that: a completed backup's directory, and
// a temporary file a live writer holds, are left alone).
func TestInterruptedBackupCleanedAtStart(t *testing.T) {
	cfg := Config{Dir: t.TempDir()}
	j, _, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, done := t.TempDir(), t.TempDir()
	if err := j.WriteBackup(filepath.Join(done, "ok.db"), cas.State{}); err != nil {
		t.Fatal(err)
	}
	// The writer of out/b.db is killed after creating its temporary file:
	// noted, never finished.
	if err := j.pending.note('+', filepath.Join(out, "b.db")); err != nil {
		t.Fatal(err)
	}
	killed := filepath.Join(out, ".b.db.tmp-k1ll3d")
	live := filepath.Join(out, ".b.db.tmp-l1ve")
	untouched := filepath.Join(done, ".ok.db.tmp-0ther")
	for _, p := range []string{killed, live, untouched} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	j.Close() // as a kill would: the note stays

	j, _, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := os.Lstat(killed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed backup's temporary file is still there (%v)", err)
	}
	for _, p := range []string{live, untouched, filepath.Join(done, "ok.db")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(cfg.Dir, PendingName)); len(b) != 0 {
		t.Errorf("the note of backups in progress is not emptied: %q", b)
	}
}
