package observe

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/theus-run/theus/protocol"
)

// Config describes the HTTP listener.
type Config struct {
	// Addr is host:port to listen on; port 0 picks a free one (URL says
	// which).
	Addr string
	// AllowRemote lets Addr be other than a loopback address; Token is
	// then required.
	AllowRemote bool
	// Token, when set, is the bearer token every request must carry
	// (Authorization: Bearer TOKEN); the page passes it on to its event
	// stream. Required with AllowRemote.
	Token string
	// PProf serves net/http/pprof under /debug/pprof/.
	PProf bool
	// Every is how often the page's numbers are sampled; default 1s.
	Every time.Duration
	Log   zerolog.Logger
}

// ErrRemote is returned by Start for an address that is not loopback
// without AllowRemote, or with AllowRemote but no Token.
var ErrRemote = errors.New("observe: a non-loopback address needs --http-allow-remote and a token (--http-token-file)")

// Server is the HTTP listener. Start one; Close stops it and every
// request it serves.
type Server struct {
	cfg     Config
	src     Source
	ln      net.Listener
	srv     *http.Server
	page    *pageHub
	tmpl    *template.Template
	stop    chan struct{} // closed by Close: the sampler and event streams end
	done    sync.WaitGroup
	closing sync.Once
}

// Start listens on cfg.Addr and serves src until Close.
func Start(cfg Config, src Source) (*Server, error) {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.AllowRemote && cfg.Token == "" {
		return nil, ErrRemote
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("observe: %w", err)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() && !cfg.AllowRemote {
		ln.Close()
		return nil, fmt.Errorf("%w: %s", ErrRemote, cfg.Addr)
	}
	tmpl, err := parsePage()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("observe: the page: %w", err)
	}
	s := &Server{cfg: cfg, src: src, ln: ln, stop: make(chan struct{}), tmpl: tmpl}
	s.page = newPageHub(src, cfg.Every)
	s.srv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	s.done.Go(func() { s.page.run(s.stop) })
	s.done.Go(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Log.Error().Err(err).Msg("the HTTP listener stopped")
		}
	})
	return s, nil
}

// URL is the page's address: http://host:port/.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Close stops the listener, ends the event streams and waits for every
// request and goroutine of the server (at most 5 s for requests). It may
// be called more than once.
func (s *Server) Close() error {
	var err error
	s.closing.Do(func() {
		close(s.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		s.done.Wait()
	})
	return err
}

// handler is every route, behind the token check and the GET-only rule.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(NewRegistry(s.src), promhttp.HandlerOpts{ErrorLog: nil}))
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.HandleFunc("GET /events", s.serveEvents)
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, s.src.Stats()) })
	mux.HandleFunc("GET /api/log", s.serveLog)
	if s.cfg.PProf {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read only: GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="theus"`)
			http.Error(w, "a bearer token is required (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized checks the bearer token, when one is set. The event
// stream, which a browser's EventSource opens without headers, may carry
// it as ?token= instead.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	got := ""
	if h := r.Header.Get("Authorization"); len(h) > 7 && h[:7] == "Bearer " {
		got = h[7:]
	} else if r.URL.Path == "/events" || r.URL.Path == "/" {
		got = r.URL.Query().Get("token")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

// serveLog is /api/log?n=N&process=P: the newest N commits (20 by
// default), as the log method returns them.
func (s *Server) serveLog(w http.ResponseWriter, r *http.Request) {
	var req protocol.LogRequest
	q := r.URL.Query()
	if v := q.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "n: "+err.Error(), http.StatusBadRequest)
			return
		}
		req.N = n
	}
	req.Process = q.Get("process")
	rep, err := s.src.Log(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, rep)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
