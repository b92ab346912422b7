package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
)

// signals returns a context that ends at SIGINT or SIGTERM (the drain).
// SIGHUP, which would otherwise kill the process without a drain, is
// logged and ignored: the supervisor has nothing to reload (its flags are
// read once, and it logs to stderr, which it does not reopen). stop
// undoes both.
func signals(log zerolog.Logger) (ctx context.Context, stop func()) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hup:
				log.Warn().Msg("SIGHUP ignored: theus-supervisor has nothing to reload (SIGTERM stops it)")
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}
