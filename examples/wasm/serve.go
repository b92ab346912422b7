package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed index.html
var page []byte

// run builds the module into a temporary directory and serves the page
// until ctx ends. It prints the page's URL on stdout once it listens.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("examples/wasm", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8418", "the loopback address to serve on (port 0: any free one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "theus-wasm-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := build(ctx, dir); err != nil {
		return err
	}
	ln, err := listen(*addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(dir), ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	fmt.Fprintf(stdout, "serving http://%s/\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listen listens on addr, which must be a loopback address: the page is
// for this machine.
func listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-addr %s: want a loopback address (127.0.0.1, ::1 or localhost)", addr)
	}
	return net.Listen("tcp", addr)
}

// build writes theus.wasm, wasm_exec.js and theus.js into dir: the
// module built with the go command on PATH, Go's loader from its GOROOT,
// and theus.js from cmd/theus-wasm.
func build(ctx context.Context, dir string) error {
	const pkg = "github.com/theus-run/theus/cmd/theus-wasm"
	src, err := goCmd(ctx, nil, "list", "-f", "{{.Dir}}", pkg)
	if err != nil {
		return err
	}
	goroot, err := goCmd(ctx, nil, "env", "GOROOT")
	if err != nil {
		return err
	}
	if _, err := goCmd(ctx, []string{"GOOS=js", "GOARCH=wasm"}, "build", "-o", filepath.Join(dir, "theus.wasm"), pkg); err != nil {
		return err
	}
	for _, f := range []string{filepath.Join(goroot, "lib", "wasm", "wasm_exec.js"), filepath.Join(src, "theus.js")} {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// goCmd runs the go command and returns its trimmed output.
func goCmd(ctx context.Context, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// handler serves the page and the three files build wrote.
func handler(dir string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	for _, f := range []string{"theus.wasm", "wasm_exec.js", "theus.js"} {
		mux.HandleFunc("GET /"+f, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, filepath.Join(dir, f))
		})
	}
	return mux
}
