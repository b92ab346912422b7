package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"

	"github.com/theus-run/theus/client"
	"github.com/theus-run/theus/internal/browsertest"
	"github.com/theus-run/theus/internal/outbuf"
	"github.com/theus-run/theus/protocol"
)

// pageURL waits for the supervisor's log line that gives the --http
// listener's URL.
func pageURL(t *testing.T, stderr *outbuf.Buffer) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			var line struct {
				URL string `json:"url"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.URL != "" {
				return line.URL
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no url in the log\n%s", stderr)
		}
	}
}

// load runs a mixed workload on sock until ctx ends: noops, increments
// of one hot counter from four connections (conflicts, VIP tickets) and
// tensors written to the HEAVY zone.
func load(ctx context.Context, t *testing.T, sock string) *sync.WaitGroup {
	var wg sync.WaitGroup
	work := []func(c *client.Client, i int) error{
		func(c *client.Client, _ int) error { _, err := c.Exec(ctx, "noop", nil); return err },
		func(c *client.Client, _ int) error { _, err := c.Exec(ctx, "counter.add", nil); return err },
		func(c *client.Client, _ int) error { _, err := c.Exec(ctx, "counter.add", nil); return err },
		func(c *client.Client, _ int) error { _, err := c.Exec(ctx, "counter.add", nil); return err },
		func(c *client.Client, i int) error {
			_, err := c.Exec(ctx, "tensor.fill", map[string]any{"key": fmt.Sprintf("t%d", i%4), "n": 65536, "value": i})
			if errors.Is(err, protocol.ErrArenaFull) {
				// The right refusal when slow snapshots pin old versions
				// of the tensors (a loaded machine): not the page's fault.
				return nil
			}
			return err
		},
	}
	for _, w := range work {
		c, err := client.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			for i := 0; ctx.Err() == nil; i++ {
				if err := w(c, i); err != nil && ctx.Err() == nil {
					t.Errorf("load: %v", err)
					return
				}
			}
		})
	}
	return &wg
}

// TestStatusPageInBrowser loads the status page in headless Chromium
// against a supervisor under load: the numbers on the page change as the
// supervisor works, the browser logs no error (script exceptions, CSP
// refusals, failed loads), and a screenshot is saved ($THEUS_SCREENSHOT,
// else in the test's directory).
func TestStatusPageInBrowser(t *testing.T) {
	var as unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &as); err == nil && as.Cur != unix.RLIM_INFINITY {
		// Chromium reserves far more address space than it uses (V8's
		// cages alone take terabytes), so it cannot start under a cap.
		t.Skipf("an address-space limit (ulimit -v) of %d MiB, under which Chromium cannot start: the status page is not tested in a browser", as.Cur>>20)
	}
	browser := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no chromium on PATH (Debian package chromium; .ci/run installs it): the status page is not tested in a browser")
	}
	cmd, sock, stderr := startSupervisor(t, "--workers", "2", "--heavy-size", "16MiB", "--http", "127.0.0.1:0")
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("SIGTERM: %v\n%s", err, stderr)
		}
	}()
	url := pageURL(t, stderr)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	wg := load(loadCtx, t, sock)
	defer func() { stopLoad(); wg.Wait() }()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1280, 1100),
		chromedp.Flag("disable-dev-shm-usage", true))
	bctx, stopBrowser := browsertest.Start(t, opts)
	defer stopBrowser()
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	var mu sync.Mutex
	var problems []string
	listen := func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			problems = append(problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, desc))
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
			}
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
				problems = append(problems, fmt.Sprintf("log %s: %s %s", ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}
	if err := chromedp.Listen(bctx, listen); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	read := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, id := range []string{"health", "version", "commits", "executes-rate", "workers", "processes", "log", "slabs", "dur-mode"} {
			text, err := chromedp.Run(ctx, chromedp.TextContent("#"+id))
			if err != nil {
				t.Fatalf("#%s: %v", id, err)
			}
			out[id] = text
		}
		slabs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#slabs div").length`))
		if err != nil {
			t.Fatal(err)
		}
		out["slab count"] = fmt.Sprint(slabs)
		return out
	}
	var first map[string]string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		first = read()
		if first["health"] != "connecting" && first["commits"] != "–" && first["commits"] != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page shows no numbers: %v\n%s", first, stderr)
		}
	}
	var later map[string]string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		later = read()
		if later["commits"] != first["commits"] && later["version"] != first["version"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the numbers did not change: %v, then %v", first, later)
		}
	}
	if !strings.Contains(later["workers"], "ready") || !strings.Contains(later["processes"], "counter.add") ||
		!strings.Contains(later["log"], "counter.add") || later["slab count"] != "2" || later["dur-mode"] != "sync" {
		t.Errorf("the page lacks workers, processes, commits, slabs or durability: %v", later)
	}
	time.Sleep(3 * time.Second) // a few seconds of chart
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := os.Getenv("THEUS_SCREENSHOT")
	if shot == "" {
		shot = t.TempDir() + "/status-page.png"
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes); page: %v", shot, len(png), later)
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
}
