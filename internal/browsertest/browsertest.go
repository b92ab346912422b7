// Package browsertest starts the headless Chromium that the browser tests
// drive (the status page, the WebAssembly example). It owns the start and
// its retries; it never judges a page.
package browsertest

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Start starts Chromium with opts and returns its context and a stop
// that ends the browser. A Chromium that dies as it starts (it has, in
// loaded CI runs, with no sign of why) is started again, up to three
// times: the browser is the test's instrument, not what it tests.
func Start(t testing.TB, opts []chromedp.ExecAllocatorOption) (context.Context, func()) {
	t.Helper()
	for try := 1; ; try++ {
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, cancelBrowser := chromedp.NewContext(actx)
		stop := func() { cancelBrowser(); cancelAlloc() }
		err := chromedp.Do(bctx, chromedp.Navigate("about:blank")) // starts it
		if err == nil {
			return bctx, stop
		}
		stop()
		if try == 3 || !strings.Contains(err.Error(), "chrome failed to start") {
			t.Fatalf("chromium: %v", err)
		}
		t.Logf("chromium did not start (try %d of 3): %v", try, err)
	}
}
