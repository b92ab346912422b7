package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/theus-run/theus/internal/browsertest"
)

// serve runs the command as `go run ./examples/wasm -addr 127.0.0.1:0`
// does, until the test ends, and returns the page's URL.
func serve(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-addr", "127.0.0.1:0"}, pw)
		pw.CloseWithError(fmt.Errorf("the server stopped: %v", err))
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the server: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("waiting for the server: %v", err)
	}
	go io.Copy(io.Discard, pr) // nothing more is printed; the pipe must not block the server
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "serving ")
	if !ok {
		t.Fatalf("the server said %q", line)
	}
	return url
}

// chromium is the path of a Chromium or Chrome, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Headless Chromium loads the page as a user would: the module, the
// loader and theus.js from the server, the workflow run to its end over
// the page's JavaScript processes. The final context is the agent's
// binary search for 37, and the console has no error: nothing logged
// with console.error, no exception, no failed load.
func TestPageRunsTheAgentInChromium(t *testing.T) {
	browser := chromium()
	if browser == "" {
		t.Skip("no chromium on PATH (Debian: apt-get install chromium): the page is not tested in a browser")
	}
	url := serve(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox does not start
		chromedp.UserDataDir(t.TempDir()),
	)
	bctx, stopBrowser := browsertest.Start(t, opts)
	defer stopBrowser()
	var mu sync.Mutex
	var problems []string
	listen := func(ev any) {
		var p string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				p = fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			p = fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, d.Text)
			if d.Exception != nil {
				p += " " + d.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError {
				p = fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
			}
		}
		if p != "" {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}
	}
	if err := chromedp.Listen(bctx, listen); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bctx, 4*time.Minute)
	defer cancel()
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil { // failed loads, refused scripts
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	// Compiling 10 MB of WebAssembly on a loaded machine takes a while.
	text, err := chromedp.Run(ctx, chromedp.Poll[string](`document.getElementById("result").dataset.done === "true" && document.getElementById("result").textContent`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(3*time.Minute)))
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		t.Fatalf("the page at %s never finished: %v (console: %q)", url, err, problems)
	}
	t.Logf("the page's result: %s", text)
	for _, p := range problems {
		t.Error(p)
	}
	var got struct {
		Status string `json:"status"`
		Ops    int    `json:"ops"`
		Steps  int    `json:"steps"`
		Error  string `json:"error"`
		// The context as get("domain") shows it.
		Context struct {
			Agent struct {
				Lo, Hi, Guess, Answer int
				Done                  bool
				Thoughts              map[string]string `json:"log_thoughts"`
			}
			World struct {
				Secret int
				Reply  struct {
					Guess  int
					Answer string
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(text), &got); err != nil {
		t.Fatalf("the page's result %q: %v", text, err)
	}
	if got.Status != "complete" || got.Steps != 8 || got.Ops != 12 {
		t.Fatalf("the run: %s (%s)", text, got.Error)
	}
	a, w := got.Context.Agent, got.Context.World
	if !a.Done || a.Answer != 37 || a.Guess != 37 || a.Lo != 26 || a.Hi != 49 || w.Secret != 37 || w.Reply.Guess != 37 || w.Reply.Answer != "correct" {
		t.Fatalf("the context: %s", text)
	}
	var thoughts []string
	for _, k := range []string{"00000000000000000000", "00000000000000000001", "00000000000000000002"} {
		thoughts = append(thoughts, a.Thoughts[k])
	}
	if want := []string{"50 is too high: try 25", "25 is too low: try 37", "37 is it"}; strings.Join(thoughts, "|") != strings.Join(want, "|") || len(a.Thoughts) != 3 {
		t.Fatalf("the agent's thoughts: %q, want %q", a.Thoughts, want)
	}
}

func TestListenRefusesAnAddressThatIsNotLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "example.com:80", "nonsense"} {
		if ln, err := listen(addr); err == nil {
			ln.Close()
			t.Errorf("%s: listening", addr)
		}
	}
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
