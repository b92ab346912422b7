package durable

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/internal/race"
)

// TestMain runs the tests, or (THEUS_TEST_HOLD=FILE) is a process that
// holds FILE locked, as another supervisor's journal would, until its
// standard input closes.
func TestMain(m *testing.M) {
	if path := os.Getenv("THEUS_TEST_HOLD"); path != "" {
		os.Exit(hold(path))
	}
	race.SkipExitSleep() // this binary, started as the lock holder
	goleak.VerifyTestMain(m)
}

func hold(path string) int {
	f, err := os.Open(path)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("held")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// opened is a journal and the store it records.
type opened struct {
	j *Journal
	s *cas.Store
}

func openStore(t *testing.T, cfg Config) opened {
	t.Helper()
	j, st, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cas.Restore(cas.Config{Committed: j.Append, OpIDWindow: cfg.OpIDWindow}, st)
	if err != nil {
		t.Fatal(err)
	}
	return opened{j, s}
}

func (o opened) commit(t *testing.T, id string, f func(*cas.Delta)) cas.Version {
	t.Helper()
	var d cas.Delta
	f(&d)
	sn := o.s.Snapshot()
	defer sn.Release()
	r, err := o.s.Commit(context.Background(), sn.Version(), nil, d, cas.Options{OpID: id, Result: []byte(`"` + id + `"`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.j.Wait(context.Background(), r.Version); err != nil {
		t.Fatal(err)
	}
	if d := o.j.Durable(); o.j.cfg.Mode == Sync && d < r.Version {
		t.Fatalf("Durable %d after Wait(%d) returned", d, r.Version)
	}
	return r.Version
}

func dump(s *cas.Store) string {
	sn := s.Snapshot()
	defer sn.Release()
	return fmt.Sprint(s.Version(), sn.Subtree("domain"))
}

func TestReopenRestoresEverything(t *testing.T) {
	cfg := Config{Dir: t.TempDir()}
	o := openStore(t, cfg)
	o.commit(t, "op-1", func(d *cas.Delta) { d.Set("domain.a", []byte("1")); d.Set("domain.b", []byte(`"x"`)) })
	o.commit(t, "", func(d *cas.Delta) { d.Append("domain.log", []byte("1")); d.Delete("domain.b") })
	o.commit(t, "op-3", func(d *cas.Delta) { d.Append("domain.log", []byte("2")); d.Set("domain.a", []byte("3")) })
	want := dump(o.s)
	if err := o.j.Close(); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, cfg)
	defer r.j.Close()
	if d := r.j.Durable(); d != 3 {
		t.Fatalf("Durable %d after a reopen, want 3 (what is in the file)", d)
	}
	if got := dump(r.s); got != want {
		t.Fatalf("restored %s, want %s", got, want)
	}
	if v, res, ok := r.s.Lookup("op-1"); !ok || v != 1 || string(res) != `"op-1"` {
		t.Fatalf("op-1 after restart: %d %s %v", v, res, ok)
	}
	// The LOG numbering goes on where it stopped.
	r.commit(t, "", func(d *cas.Delta) { d.Append("domain.log", []byte("3")) })
	sn := r.s.Snapshot()
	defer sn.Release()
	if got := fmt.Sprint(sn.Subtree("domain.log")); got != fmt.Sprint([]cas.Entry{
		{Path: "domain.log.00000000000000000000", Value: []byte("1"), Version: 2},
		{Path: "domain.log.00000000000000000001", Value: []byte("2"), Version: 3},
		{Path: "domain.log.00000000000000000002", Value: []byte("3"), Version: 4},
	}) {
		t.Fatalf("log after restart: %s", got)
	}
}

// TestGroupCommit: 64 concurrent committers share fsyncs.
func TestGroupCommit(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxBatch int
	}{{"grouped", 0}, {"one per fsync", 1}, {"at most 4", 4}} {
		t.Run(c.name, func(t *testing.T) {
			o := openStore(t, Config{Dir: t.TempDir(), MaxBatch: c.maxBatch})
			defer o.j.Close()
			var wg sync.WaitGroup
			for i := range 64 {
				wg.Go(func() {
					for k := range 20 {
						var d cas.Delta
						d.Set(contract.Path("domain.k"+strconv.Itoa(i)), []byte(strconv.Itoa(k)))
						sn := o.s.Snapshot()
						r, err := o.s.Commit(context.Background(), sn.Version(), nil, d, cas.Options{})
						sn.Release()
						if err == nil {
							err = o.j.Wait(context.Background(), r.Version)
						}
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			st := o.j.Stats()
			t.Logf("%d commits in %d fsynced batches (%.1f per fsync)", st.Commits, st.Batches, float64(st.Commits)/float64(st.Batches))
			switch {
			case st.Commits != 64*20:
				t.Fatalf("%d commits written, want %d", st.Commits, 64*20)
			case c.maxBatch == 0 && st.Batches >= st.Commits/2:
				t.Fatal("no group commit")
			case c.maxBatch > 0 && st.Batches < st.Commits/uint64(c.maxBatch):
				t.Fatalf("batches of more than %d commits", c.maxBatch)
			}
		})
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestRefusesBadFiles: a corrupt, truncated, newer or locked state file
// stops Open with a typed error and is left exactly as it was.
func TestRefusesBadFiles(t *testing.T) {
	build := func(t *testing.T) (Config, string) {
		cfg := Config{Dir: t.TempDir()}
		o := openStore(t, cfg)
		for i := range 50 {
			o.commit(t, "op-"+strconv.Itoa(i), func(d *cas.Delta) {
				d.Set(contract.Path("domain.v"+strconv.Itoa(i)), []byte(`"a recognizable value `+strconv.Itoa(i)+`"`))
			})
		}
		o.j.Close()
		return cfg, filepath.Join(cfg.Dir, FileName)
	}
	damage := map[string]func(t *testing.T, path string){
		"flipped byte in a value": func(t *testing.T, path string) {
			// Every copy: bbolt keeps stale copies in free pages.
			b, _ := os.ReadFile(path)
			n := 0
			for i := indexOf(b, []byte("recognizable value 17")); i >= 0; i = indexOf(b, []byte("recognizable value 17")) {
				b[i] ^= 0x20
				n++
			}
			if n == 0 {
				t.Fatal("value not found in the file")
			}
			os.WriteFile(path, b, 0o600)
		},
		"truncated": func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			os.Truncate(path, fi.Size()/3)
		},
		"zeroed meta pages": func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			clear(b[:8192])
			os.WriteFile(path, b, 0o600)
		},
		"garbage": func(t *testing.T, path string) {
			os.WriteFile(path, []byte("not a database at all, just some text"), 0o600)
		},
		"empty": func(t *testing.T, path string) {
			os.Truncate(path, 0)
		},
		// bbolt would fall back to the other meta page, one transaction
		// older, and lose the newest commits silently.
		"flipped byte in the newest meta page": func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			ps := int(native.Uint32(b[pageHeaderSize+8:]))
			newest := 0
			if native.Uint64(b[ps+pageHeaderSize+48:]) > native.Uint64(b[pageHeaderSize+48:]) {
				newest = ps
			}
			b[newest+pageHeaderSize+48] ^= 0x04 // the transaction id
			os.WriteFile(path, b, 0o600)
		},
	}
	reasons := map[string]string{
		"truncated":                            "truncated: the file is",
		"empty":                                "the file is empty (0 bytes)",
		"zeroed meta pages":                    "meta page",
		"flipped byte in the newest meta page": "checksum mismatch",
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			cfg, path := build(t)
			f(t, path)
			before := fileSum(t, path)
			_, _, err := Open(cfg)
			if !errors.Is(err, ErrCorrupt) || errors.Is(err, errBoltPanic) || !strings.Contains(err.Error(), reasons[name]) {
				t.Fatalf("Open: %v, want ErrCorrupt saying %q", err, reasons[name])
			}
			t.Log(err)
			if fileSum(t, path) != before {
				t.Fatal("Open changed the file")
			}
		})
	}
	t.Run("newer format", func(t *testing.T) {
		cfg, path := build(t)
		j, _, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		j.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put([]byte("format"), record([]byte("format"), []byte{Format + 1, 0, 0, 0, 0, 0, 0, 0}))
		})
		j.Close()
		before := fileSum(t, path)
		if _, _, err := Open(cfg); !errors.Is(err, ErrNewerFormat) {
			t.Fatalf("Open: %v, want ErrNewerFormat", err)
		}
		if fileSum(t, path) != before {
			t.Fatal("Open changed the file")
		}
	})
	t.Run("locked", func(t *testing.T) {
		cfg, _ := build(t)
		j, _, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		if _, _, err := Open(cfg); !errors.Is(err, ErrLocked) {
			t.Fatalf("a second Open: %v, want ErrLocked", err)
		}
	})
}

func indexOf(b, sub []byte) int {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return i
		}
	}
	return -1
}

// TestFaults: a batch that fails before or during its write is not
// acknowledged and not on disk; one that fails after its fsync is not
// acknowledged but is on disk, once, with its op id. After any failure
// the journal acknowledges nothing more.
func TestFaults(t *testing.T) {
	for _, c := range []struct {
		point   string
		present bool
	}{{"before-write", false}, {"in-tx", false}, {"after-sync", true}} {
		t.Run(c.point, func(t *testing.T) {
			fail := false
			cfg := Config{Dir: t.TempDir(), Fault: func(p string) error {
				if fail && p == c.point {
					return errors.New("injected at " + p)
				}
				return nil
			}}
			o := openStore(t, cfg)
			o.commit(t, "op-1", func(d *cas.Delta) { d.Set("domain.a", []byte("1")) })
			fail = true
			var d cas.Delta
			d.Set("domain.a", []byte("2"))
			sn := o.s.Snapshot()
			r, err := o.s.Commit(context.Background(), sn.Version(), nil, d, cas.Options{OpID: "op-2"})
			sn.Release()
			if err != nil {
				t.Fatal(err)
			}
			if err := o.j.Wait(context.Background(), r.Version); !errors.Is(err, ErrFailed) {
				t.Fatalf("Wait after a fault: %v, want ErrFailed", err)
			}
			select {
			case <-o.j.Failed():
			default:
				t.Fatal("Failed not closed")
			}
			if err := o.j.Wait(context.Background(), 1); !errors.Is(err, ErrFailed) {
				t.Fatalf("Wait on an old version after a failure: %v", err)
			}
			o.j.Close()
			cfg.Fault = nil
			r2 := openStore(t, cfg)
			defer r2.j.Close()
			_, _, has := r2.s.Lookup("op-2")
			sn = r2.s.Snapshot()
			defer sn.Release()
			e, _ := sn.Get("domain.a")
			if has != c.present || (string(e.Value) == "2") != c.present {
				t.Fatalf("after restart: op-2 recorded %v, domain.a = %s; want present %v", has, e.Value, c.present)
			}
		})
	}
}

// TestOpIDWindow: the oldest op ids leave the file as they leave the
// store; an id reused after it left is recorded again.
func TestOpIDWindow(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), OpIDWindow: 4}
	o := openStore(t, cfg)
	for i := range 10 {
		o.commit(t, "op-"+strconv.Itoa(i%6), func(d *cas.Delta) { d.Set("domain.a", []byte(strconv.Itoa(i))) })
	}
	o.j.Close()
	r := openStore(t, cfg)
	defer r.j.Close()
	for i := range 6 {
		_, _, ok := r.s.Lookup("op-" + strconv.Itoa(i))
		// The last four commits used op-0..op-3 (i = 6..9): op-4, op-5 left.
		if ok != (i < 4) {
			t.Errorf("op-%d in the window: %v", i, ok)
		}
	}
}
