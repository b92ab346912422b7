package durable

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/theus-run/theus/cas"
)

// TestBackupTargetsRefused: a backup onto the state file under any of
// its names, onto the state directory (which holds the lock), onto a
// socket, a directory, a pipe, a dangling link, or a file this process
// has open is refused, and nothing changes: the state file is the same
// file with the same bytes, no temporary file is left, and the journal
// goes on acknowledging commits that a reopen finds.
func TestBackupTargetsRefused(t *testing.T) {
	cfg := Config{Dir: t.TempDir()}
	o := openStore(t, cfg)
	defer func() { o.j.Close() }()
	o.commit(t, "op-0", func(d *cas.Delta) { d.Set("domain.n", []byte("0")) })
	state := filepath.Join(cfg.Dir, FileName)
	other := t.TempDir()
	at := func(name string) string { return filepath.Join(other, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Link(state, at("hard.db")))
	must(os.Symlink(state, at("soft.db")))
	must(os.Mkdir(filepath.Join(cfg.Dir, "x"), 0o700))
	ln, err := net.Listen("unix", at("s.sock"))
	must(err)
	defer ln.Close()
	must(os.Mkdir(at("dir"), 0o700))
	must(syscall.Mkfifo(at("pipe"), 0o600))
	must(os.Symlink(at("none"), at("dangling")))
	log, err := os.Create(at("log.txt"))
	must(err)
	defer log.Close()

	for _, c := range []struct{ name, path, says string }{
		{"the state file", state, "is the state file this supervisor has open"},
		{"a hard link of it", at("hard.db"), "is the state file this supervisor has open"},
		{"a symbolic link to it", at("soft.db"), "is the state file this supervisor has open"},
		{"x/.. in the state directory", cfg.Dir + "/x/../" + FileName, "is the state file this supervisor has open"},
		{"the state directory, its lock", cfg.Dir, "is a directory"},
		{"the socket", at("s.sock"), "is a socket"},
		{"a directory", at("dir"), "is a directory"},
		{"a named pipe", at("pipe"), "is a named pipe"},
		{"a dangling link", at("dangling"), "a symbolic link to nothing"},
		{"a file this process writes", at("log.txt"), "this supervisor has open"},
		{"a name that is no file", other + "/..", "does not name a file"},
		{"a name that is the directory", other + "/.", "does not name a file"},
		{"a path that ends in a slash", other + "/", "does not name a file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := fileSum(t, state)
			fi, _ := os.Stat(state)
			err := WriteBackup(c.path, o.s.Export())
			if !errors.Is(err, ErrBadTarget) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("backup onto %s: %v, want ErrBadTarget saying %q", c.path, err, c.says)
			}
			t.Log(err)
			now, _ := os.Stat(state)
			if fileSum(t, state) != before || !os.SameFile(fi, now) {
				t.Fatal("the state file changed")
			}
			for _, d := range []string{cfg.Dir, other} {
				es, _ := os.ReadDir(d)
				for _, e := range es {
					if strings.Contains(e.Name(), ".tmp-") {
						t.Fatalf("a temporary file was left: %s", e.Name())
					}
				}
			}
		})
	}
	// Commits go on, and are in the file a reopen reads.
	for i := 1; i <= 3; i++ {
		o.commit(t, "op-"+strconv.Itoa(i), func(d *cas.Delta) { d.Set("domain.n", []byte(strconv.Itoa(i))) })
	}
	want := dump(o.s)
	must(o.j.Close())
	o = openStore(t, cfg)
	if got := dump(o.s); got != want {
		t.Fatalf("after the refused backups and a reopen: %s, want %s", got, want)
	}
}

// TestBackupThroughDotDot: x/.. is resolved as the kernel does, after
// following x: the backup lands beside x's target, and that is what is
// checked.
func TestBackupThroughDotDot(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(b, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(b, "sub"), filepath.Join(a, "x")); err != nil {
		t.Fatal(err)
	}
	if err := WriteBackup(a+"/x/../out.db", cas.State{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBackup(filepath.Join(b, "out.db")); err != nil {
		t.Fatalf("the backup is not where the kernel resolves x/..: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(a, "out.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the backup went where x/.. was cleaned lexically: %v", err)
	}
}

// TestBackupOntoAFileAnotherProcessHolds: a file another process holds
// locked (another supervisor's state file) is refused while it holds it,
// and replaced once it let go.
func TestBackupOntoAFileAnotherProcessHolds(t *testing.T) {
	target := filepath.Join(t.TempDir(), "theirs.db")
	if err := WriteBackup(target, cas.State{}); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "THEUS_TEST_HOLD="+target)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "held\n" {
		t.Fatalf("the holder says %q, %v", line, err)
	}
	before := fileSum(t, target)
	err := WriteBackup(target, cas.State{Version: 7})
	if !errors.Is(err, ErrBadTarget) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("a backup onto a file another process holds: %v, want ErrBadTarget", err)
	}
	if fileSum(t, target) != before {
		t.Fatal("the held file changed")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := WriteBackup(target, cas.State{Version: 7}); err != nil {
		t.Fatalf("once let go: %v", err)
	}
}
