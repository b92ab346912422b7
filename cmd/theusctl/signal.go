package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	ossignal "os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// watchCmd streams the signals of a subtree as JSON lines until
// interrupted.
func (a *app) watchCmd() *cobra.Command {
	var ready string
	cmd := &cobra.Command{
		Use:   "watch [PATH]",
		Short: `Print the signals at or under PATH (all without it) as JSON lines {"version":V,"path":P,"value":X}, and {"lagged":N} for N missed, until interrupted`,
		Long: "A signal is printed once its commit is durable, in version order. A watcher that does not keep up " +
			"misses signals rather than slowing commits: a line {\"lagged\":N} says how many, where they went missing. " +
			"SIGINT or SIGTERM ends the watch with exit status 0.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			prefix := ""
			if len(pos) == 1 {
				prefix = pos[0]
			}
			ctx, stop := ossignal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			w, err := c.Watch(ctx, prefix)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch %q: %w", prefix, err)
			}
			defer w.Close()
			if ready != "" {
				if err := os.WriteFile(ready, nil, 0o600); err != nil {
					return fmt.Errorf("watch %q: --ready: %w", prefix, err)
				}
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetEscapeHTML(false)
			for {
				s, err := w.Next(ctx)
				switch {
				case ctx.Err() != nil, errors.Is(err, io.EOF):
					return nil
				case err != nil:
					return fmt.Errorf("watch %q: %w", prefix, err)
				case s.Lagged != 0:
					err = enc.Encode(struct {
						Lagged uint64 `json:"lagged"`
					}{s.Lagged})
				default:
					err = enc.Encode(struct {
						Version uint64          `json:"version"`
						Path    string          `json:"path"`
						Value   json.RawMessage `json:"value"`
					}{s.Version, s.Path, s.Value})
				}
				if err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().StringVar(&ready, "ready", "", "create this file once the watch is in place: every signal committed after it appears is printed (for scripts)")
	return cmd
}

// signalCmd publishes a signal.
func (a *app) signalCmd() *cobra.Command {
	var value string
	cmd := &cobra.Command{
		Use:   "signal PATH",
		Short: "Publish a signal at PATH (a sig_* or cmd_* path) through a commit; print {ok, version} once durable",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			var v json.RawMessage // nil: null
			if value != "" {
				if !json.Valid([]byte(value)) {
					return fmt.Errorf("signal %s: --value is not valid JSON: %s", pos[0], value)
				}
				v = json.RawMessage(value)
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ver, err := c.Signal(context.Background(), pos[0], v)
			if err != nil {
				return fmt.Errorf("signal %s: %w", pos[0], err)
			}
			return json.NewEncoder(a.stdout).Encode(struct {
				OK      bool   `json:"ok"`
				Version uint64 `json:"version"`
			}{true, ver})
		},
	}
	cmd.Flags().StringVar(&value, "value", "", "the signal's value as JSON (default null)")
	return cmd
}
