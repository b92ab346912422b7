package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/theus-run/theus/supervisor"
)

// signals returns a context that ends at SIGINT or SIGTERM (the drain).
// SIGHUP, which would otherwise kill the process without a drain, calls
// hup, which reloads the --audit recipe and reports whether there was
// one; without one it is logged and ignored (the flags are read once, and
// the supervisor logs to stderr, which it does not reopen). stop undoes
// both.
func signals(log zerolog.Logger, hup func() bool) (ctx context.Context, stop func()) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hups:
				if !hup() {
					log.Warn().Msg("SIGHUP ignored: theus-supervisor has nothing to reload without --audit (SIGTERM stops it)")
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(hups)
		cancel()
		<-done
	}
}

// reloadAudit reloads s's --audit recipe, for SIGHUP; it reports false
// when there is none to reload (no --audit, or s not started yet). A
// recipe that does not load is logged with its file:line problems, and
// the old one stays.
func reloadAudit(s *supervisor.Supervisor, file string, log zerolog.Logger) bool {
	if s == nil || file == "" {
		return false
	}
	gen, err := s.ReloadAudit()
	if err != nil {
		log.Error().Err(err).Str("file", file).Msg("SIGHUP: the audit recipe does not load; the old one stays")
		return true
	}
	log.Info().Str("file", file).Uint64("recipe", gen).Msg("SIGHUP: audit recipe reloaded")
	return true
}
