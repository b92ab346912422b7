package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/observe"
	"github.com/theus-run/theus/supervisor"
)

// httpFlags are the --http listener's flags.
type httpFlags struct {
	addr        string
	allowRemote bool
	tokenFile   string
	pprof       bool
}

// check refuses flags that mean nothing without --http (or --demo,
// which turns it on).
func (h httpFlags) check(demo bool) error {
	if h.addr != "" || demo {
		return nil
	}
	switch {
	case h.allowRemote:
		return errors.New("--http-allow-remote: needs --http")
	case h.tokenFile != "":
		return errors.New("--http-token-file: needs --http")
	case h.pprof:
		return errors.New("--pprof: needs --http")
	}
	return nil
}

// startHTTP starts the --http listener on s (on a free loopback port for
// --demo without --http), or nothing without either. It is closed when
// ctx ends, before the supervisor drains, or by the returned func.
func startHTTP(ctx context.Context, f flags, s *supervisor.Supervisor, log zerolog.Logger) (func(), error) {
	addr := f.http.addr
	if addr == "" && !f.demo {
		return func() {}, nil
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	token, err := readToken(f.http.tokenFile)
	if err != nil {
		return nil, err
	}
	hs, err := observe.Start(observe.Config{Addr: addr, AllowRemote: f.http.allowRemote, Token: token, PProf: f.http.pprof, Log: log}, s)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { hs.Close() })
	log.Info().Str("url", hs.URL()).Bool("pprof", f.http.pprof).Bool("token", token != "").Msg("status page, /metrics and /api/log")
	if f.demo {
		fmt.Println("status page:", hs.URL())
	}
	return func() { stop(); hs.Close() }, nil
}

// readToken reads a bearer token from file ("" for none): one line, at
// least 16 characters, in a file no one but its owner can read.
func readToken(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("--http-token-file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("--http-token-file %s: mode %04o lets others read it; chmod 600", file, fi.Mode().Perm())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--http-token-file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < 16 || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("--http-token-file %s: want one token of at least 16 characters without spaces", file)
	}
	return token, nil
}
