package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theus-run/theus/cas"
	"github.com/theus-run/theus/contract"
	"github.com/theus-run/theus/durable"
)

// stateFile writes a state file of about 30 pages into dir, through a
// journal, and returns its bytes.
func stateFile(t *testing.T, dir string) []byte {
	t.Helper()
	j, st, err := durable.Open(durable.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cas.Restore(cas.Config{Committed: j.Append}, st)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		var d cas.Delta
		for k := range 20 {
			d.Set(contract.Path("domain.p"+strconv.Itoa(i*20+k)), []byte(`"`+strings.Repeat("x", 100)+`"`))
		}
		sn := s.Snapshot()
		r, err := s.Commit(context.Background(), sn.Version(), nil, d, cas.Options{OpID: "op-" + strconv.Itoa(i)})
		sn.Release()
		if err == nil {
			err = j.Wait(context.Background(), r.Version)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, durable.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// supervise runs theus-supervisor with args until it exits (60 s at
// most) and returns its exit status and standard error.
func supervise(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "theus-supervisor"), append([]string{"--workers", "1", "--heavy-size", "8MiB", "--log-format", "json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second // a worker that outlived it holding stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestTruncatedStateFileExits3: a supervisor started on a state file
// cut at any page boundary, or from a backup cut so, exits with status
// 3 and says the file is truncated, every time; the file is left as it
// was. (bbolt, mapping such a file, used to die of SIGSEGV in about half
// of the starts.)
func TestTruncatedStateFileExits3(t *testing.T) {
	whole := stateFile(t, t.TempDir())
	// The pages in use: the high-water mark of the newest meta page (the
	// file may be longer, and cutting what lies past it loses nothing).
	const pageSize, hwm, txid = 4096, 16 + 40, 16 + 48
	le := binary.LittleEndian
	newest := 0
	if le.Uint64(whole[pageSize+txid:]) > le.Uint64(whole[txid:]) {
		newest = pageSize
	}
	pages := int(le.Uint64(whole[newest+hwm:]))
	if pages < 20 || pages*pageSize > len(whole) {
		t.Fatalf("the state file has %d pages in %d bytes, want at least 20", pages, len(whole))
	}
	state, work := t.TempDir(), t.TempDir()
	path := filepath.Join(state, durable.FileName)
	for i := range 20 {
		cut := whole[:(2+i*(pages-2)/20)*pageSize+i%3*100]
		if err := os.WriteFile(path, cut, 0o600); err != nil {
			t.Fatal(err)
		}
		code, stderr := supervise(t, "--socket", filepath.Join(work, "run", "s.sock"), "--state-dir", state)
		if code != 3 || !strings.Contains(stderr, "state file is corrupt") || !strings.Contains(stderr, "truncated") {
			t.Fatalf("start %d on a state file cut to %d bytes: exit status %d, want 3 saying it is truncated:\n%s", i, len(cut), code, stderr)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, cut) {
			t.Fatalf("start %d changed the truncated state file", i)
		}
	}
	backup := filepath.Join(work, "backup.db")
	for i := range 6 {
		cut := whole[:(3+i*(pages-3)/6)*pageSize]
		if err := os.WriteFile(backup, cut, 0o600); err != nil {
			t.Fatal(err)
		}
		code, stderr := supervise(t, "--socket", filepath.Join(work, "run", "s.sock"), "--state-dir", t.TempDir(), "--restore", backup)
		if code != 3 || !strings.Contains(stderr, "restore: durable: state file is corrupt") || !strings.Contains(stderr, "truncated") {
			t.Fatalf("--restore %d of a backup cut to %d bytes: exit status %d, want 3 saying it is truncated:\n%s", i, len(cut), code, stderr)
		}
	}
}

// TestSecondSupervisorAfterRename: once another file was renamed over
// a running supervisor's theus.db, a second supervisor on the same state
// directory is still refused (exit status 3), and the first acknowledges
// nothing more: it stops rather than acknowledge commits into a file that
// no restart reads.
func TestSecondSupervisorAfterRename(t *testing.T) {
	work := t.TempDir()
	state, sock := filepath.Join(work, "state"), filepath.Join(work, "run", "s.sock")
	first := exec.Command(filepath.Join(binDir, "theus-supervisor"), "--workers", "1", "--heavy-size", "8MiB", "--socket", sock, "--state-dir", state)
	// A file, not a pipe: Wait need not wait for the workers to close it.
	firstErr, err := os.Create(filepath.Join(work, "first.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer firstErr.Close()
	first.Stderr = firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { first.Wait(); close(exited) }()
	defer func() {
		first.Process.Signal(syscall.SIGKILL)
		<-exited
	}()
	log := func() string { b, _ := os.ReadFile(firstErr.Name()); return string(b) }
	ctl := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(append([]string{"--socket", sock}, args...), &out, &out)
		return code, out.String()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := ctl("exec", "counter.add", "--id", "op-1"); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first supervisor did not come up:\n%s", log())
		}
	}
	path := filepath.Join(state, durable.FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".copy", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".copy", path); err != nil {
		t.Fatal(err)
	}
	code, stderr := supervise(t, "--socket", filepath.Join(work, "run2", "s.sock"), "--state-dir", state)
	if code != 3 || !strings.Contains(stderr, "state file in use by another process") {
		t.Fatalf("a second supervisor on the same state directory: exit status %d, want 3 (in use):\n%s", code, stderr)
	}
	code, out := ctl("exec", "counter.add") // no op id: not sent again
	if code == 0 || !strings.Contains(out, "replaced") {
		t.Fatalf("a commit after the state file was replaced: exit status %d, want a failure saying so:\n%s", code, out)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the first supervisor did not stop after its journal failed:\n%s", log())
	}
	if !strings.Contains(log(), "replaced") {
		t.Fatalf("the first supervisor did not say why it stopped:\n%s", log())
	}
}
