package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

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

// listener is the --http listener to start, once checked: its address
// ("" for none) and token.
type listener struct {
	addr, token string
}

// prepare checks what can be checked before the supervisor starts: the
// token file, and that an IP address off loopback is allowed and has a
// token (a host name is checked once it is listened on).
func (h httpFlags) prepare(demo bool) (listener, error) {
	l := listener{addr: h.addr}
	if l.addr == "" && demo {
		l.addr = "127.0.0.1:0"
	}
	if l.addr == "" {
		return l, nil
	}
	var err error
	if l.token, err = readToken(h.tokenFile); err != nil {
		return l, err
	}
	host, _, err := net.SplitHostPort(l.addr)
	if err != nil {
		return l, fmt.Errorf("--http %s: %w", l.addr, err)
	}
	ip := net.ParseIP(host)
	remote := host == "" || (ip != nil && !ip.IsLoopback())
	if remote && (!h.allowRemote || l.token == "") {
		return l, fmt.Errorf("--http %s: %w", l.addr, observe.ErrRemote)
	}
	if h.allowRemote && l.token == "" {
		return l, fmt.Errorf("--http-allow-remote: %w", observe.ErrRemote)
	}
	return l, nil
}

// startHTTP starts the listener on s, or nothing without one. It is
// closed when ctx ends, before the supervisor drains, or by the returned
// func.
func startHTTP(ctx context.Context, l listener, f flags, s *supervisor.Supervisor, log zerolog.Logger) (func(), error) {
	if l.addr == "" {
		return func() {}, nil
	}
	if f.http.pprof {
		// The lock and blocking profiles record nothing unless asked
		// to: where the supervisor waits is what a profile of a
		// many-core machine is for. One contended lock in 100, and
		// blocking sampled about once per 100 µs blocked.
		runtime.SetMutexProfileFraction(100)
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	}
	hs, err := observe.Start(observe.Config{Addr: l.addr, AllowRemote: f.http.allowRemote, Token: l.token, PProf: f.http.pprof, Log: log}, s)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", l.addr, err)
	}
	stop := context.AfterFunc(ctx, func() { hs.Close() })
	log.Info().Str("url", hs.URL()).Bool("pprof", f.http.pprof).Bool("token", l.token != "").Msg("status page, /metrics and /api/log")
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
