package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-executed as a peer process: THEUS_RING_HELPER says
// what it does with fd 3, and it stops when its stdin reaches EOF.
const helperEnv = "THEUS_RING_HELPER"

const (
	helperRingEcho     = "ring-echo"      // fd 3: a ring pair; echo every record
	helperRingEchoSpin = "ring-echo-spin" // the same, spinning 5 µs before parking
	helperRingEchoBell = "ring-echo-bell" // the same, sleeping on the doorbells at fds 4 and 5, GOMAXPROCS 1 (a worker's way)
	helperRingCrash    = "ring-crash"     // publish two records, reserve a third, half-write it, die
	helperSeqpacket    = "seqpacket-echo" // fd 3: a SOCK_SEQPACKET socket; one write per message
	helperStream       = "stream-echo"    // fd 3: a SOCK_STREAM socket; one write per read
)

// spinBench is the spin the "spin" variants use.
const spinBench = 5 * time.Microsecond

func runHelper(mode string) int {
	if err := helper(mode); err != nil {
		fmt.Fprintln(os.Stderr, "ring helper:", err)
		return 1
	}
	return 0
}

func helper(mode string) error {
	f := os.NewFile(3, "peer")
	switch mode {
	case helperRingEcho, helperRingEchoSpin, helperRingEchoBell:
		p, err := Map(f, Worker)
		if err != nil {
			return err
		}
		defer p.Close()
		switch mode {
		case helperRingEchoSpin:
			p.Reader().SetSpin(spinBench)
		case helperRingEchoBell:
			runtime.GOMAXPROCS(1)
			req, rep := os.NewFile(4, "req-bell"), os.NewFile(5, "rep-bell")
			err := p.SetDoorbells(req, rep)
			req.Close()
			rep.Close()
			if err != nil {
				return err
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stdinEOF := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); cancel(); close(stdinEOF) }()
		err = echo(ctx, p)
		<-stdinEOF
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case helperRingCrash:
		p, err := Map(f, Worker)
		if err != nil {
			return err
		}
		w := p.Writer()
		if err := w.Write([]byte("one")); err != nil {
			return err
		}
		if err := w.Write([]byte("two")); err != nil {
			return err
		}
		buf, err := w.Reserve(1000)
		if err != nil {
			return err
		}
		copy(buf, "half a record")
		return unix.Kill(os.Getpid(), unix.SIGKILL)
	case helperSeqpacket:
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(3, buf)
			if err != nil || n == 0 {
				return err
			}
			if _, err := unix.Write(3, buf[:n]); err != nil {
				return err
			}
		}
	case helperStream:
		buf := make([]byte, 256<<10)
		for {
			n, err := unix.Read(3, buf)
			if err != nil || n == 0 {
				return err
			}
			if err := writeAll(3, buf[:n]); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown mode %q", mode)
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// peer is a running helper process.
type peer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startPeer runs the test binary as a helper of mode with f as its fd 3
// (and more, if any, as 4 and on).
func startPeer(t testing.TB, mode string, f *os.File, more ...*os.File) *peer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.ExtraFiles = append([]*os.File{f}, more...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peer{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		p.stdin.Close()
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// stop closes the helper's stdin and waits for it to exit.
func (p *peer) stop() error {
	p.stdin.Close()
	return p.cmd.Wait()
}
