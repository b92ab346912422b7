package durable

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
)

// A backup written from a store's Export reads back to the same state;
// installed in a state directory, a journal opened there restores it;
// a damaged backup is refused; a state file held by a running journal is
// not replaced.
func TestBackupRoundTrip(t *testing.T) {
	o := openStore(t, Config{Dir: t.TempDir(), OpIDWindow: 4})
	defer o.j.Close()
	for i, id := range []string{"a", "b", "", "c", "d", "e"} {
		o.commit(t, id, func(d *cas.Delta) {
			d.Set("domain.x", []byte(string(rune('0'+i))))
			d.Set(contract.Path("domain.k"+id), []byte(`"v"`))
			d.Append("domain.log", []byte(`1`))
		})
	}
	want := dump(o.s)
	file := filepath.Join(t.TempDir(), "backup.db")
	if err := WriteBackup(file, o.s.Export()); err != nil {
		t.Fatal(err)
	}
	st, err := ReadBackup(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.OpIDs) != 4 || st.OpIDs[0].ID != "b" || st.Seqs["domain.log"] != 6 {
		t.Fatalf("op ids %v, log seq %d", st.OpIDs, st.Seqs["domain.log"])
	}

	dir := t.TempDir()
	if _, err := Install(dir, st); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, Config{Dir: dir, OpIDWindow: 4})
	if got := dump(r.s); got != want {
		t.Fatalf("restored %s, want %s", got, want)
	}
	if v, res, ok := r.s.Lookup("c"); !ok || v != 4 || string(res) != `"c"` {
		t.Fatalf("op c after the restore: %d %s %v", v, res, ok)
	}
	// The journal goes on from there: new commits and op ids are kept.
	r.commit(t, "f", func(d *cas.Delta) { d.Set("domain.x", []byte("9")) })

	// Installing over a file a journal holds changes nothing.
	if _, err := Install(dir, st); !errors.Is(err, ErrLocked) {
		t.Fatalf("install over a held file: %v, want ErrLocked", err)
	}
	if err := r.j.Close(); err != nil {
		t.Fatal(err)
	}
	kept, err := Install(dir, st)
	if err != nil || !strings.Contains(kept, ".replaced-") {
		t.Fatalf("install over a closed file: kept %q, %v", kept, err)
	}
	if _, err := ReadBackup(kept); err != nil {
		t.Fatalf("the replaced file is not kept intact: %v", err)
	}

	// A damaged backup is refused.
	b, _ := os.ReadFile(file)
	for i := len(b) / 2; i < len(b)/2+4096 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, b, 0o600)
	if _, err := ReadBackup(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a damaged backup: %v, want ErrCorrupt", err)
	}
	if _, err := ReadBackup(filepath.Join(t.TempDir(), "none.db")); err == nil {
		t.Fatal("a missing backup read without error")
	}
}
