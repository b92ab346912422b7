package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	ossignal "os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/theus-run/theus/client"
)

// logCmd prints the commit log: JSON lines, or a table on a terminal.
func (a *app) logCmd() *cobra.Command {
	var n int
	var follow bool
	var process, ready string
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Print the newest commits (version, time, process, op id, paths, attempts, VIP, duration): a table on a terminal, else JSON lines",
		Long: "The supervisor keeps the last --commit-log commits (default 1024) in memory, in version order; a restart empties the log. " +
			"--follow then prints every new commit until SIGINT or SIGTERM (exit status 0); a follower that falls the log's size behind gets a line " +
			"{\"lagged\":N} where N commits went missing. -o json prints JSON lines on a terminal too. A commit is listed once applied: with " +
			"--durability sync it is on disk before its client gets a reply, not necessarily before it is listed.",
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if n < 1 {
				return fmt.Errorf("log: --n %d: want at least 1", n)
			}
			ctx, stop := ossignal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			out := a.logPrinter()
			if !follow {
				entries, _, err := c.Log(ctx, n, process)
				if err != nil {
					return fmt.Errorf("log: %w", err)
				}
				for _, e := range entries {
					if err := out(e); err != nil {
						return err
					}
				}
				return nil
			}
			f, err := c.FollowLog(ctx, n, process)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("log --follow: %w", err)
			}
			defer f.Close()
			if ready != "" {
				if err := os.WriteFile(ready, nil, 0o600); err != nil {
					return fmt.Errorf("log --follow: --ready: %w", err)
				}
			}
			for {
				e, err := f.Next(ctx)
				switch {
				case ctx.Err() != nil, errors.Is(err, io.EOF):
					return nil
				case err != nil:
					return fmt.Errorf("log --follow: %w", err)
				}
				if err := out(e); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().IntVar(&n, "n", 20, "how many of the newest commits to print (with --follow: before the new ones)")
	cmd.Flags().BoolVar(&follow, "follow", false, "then print every new commit until interrupted")
	cmd.Flags().StringVar(&process, "process", "", "only the commits of this process")
	cmd.Flags().StringVar(&ready, "ready", "", "with --follow: create this file once the follow is in place (for scripts)")
	return cmd
}

// logPrinter returns what prints one entry: a table row when stdout is
// a terminal and -o is not json (the header first), else a JSON line.
func (a *app) logPrinter() func(client.LogEntry) error {
	if f, ok := a.stdout.(*os.File); !ok || a.output == "json" || !term.IsTerminal(int(f.Fd())) {
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		return func(e client.LogEntry) error { return enc.Encode(e) }
	}
	header := false
	return func(e client.LogEntry) error {
		if !header {
			header = true
			if _, err := fmt.Fprintf(a.stdout, "%9s  %-12s  %-20s  %-16s  %3s  %-3s  %9s  %s\n", "VERSION", "TIME", "PROCESS", "OP ID", "ATT", "VIP", "DURATION", "PATHS"); err != nil {
				return err
			}
		}
		_, err := fmt.Fprintln(a.stdout, logRow(e))
		return err
	}
}

// logRow is an entry as a table row.
func logRow(e client.LogEntry) string {
	if e.Lagged != 0 {
		return fmt.Sprintf("%9s  (%d commits missed: this follower fell behind the log)", "…", e.Lagged)
	}
	vip := ""
	if e.VIP {
		vip = "VIP"
	}
	proc := e.Process
	if proc == "" {
		proc = "(supervisor)"
	}
	paths := strings.Join(e.Paths, " ")
	if e.MorePaths > 0 {
		paths += fmt.Sprintf(" +%d", e.MorePaths)
	}
	if e.Signals > 0 {
		paths += fmt.Sprintf(" (%d signals)", e.Signals)
	}
	return fmt.Sprintf("%9d  %-12s  %-20s  %-16s  %3d  %-3s  %9s  %s", e.Version, e.Time.Local().Format("15:04:05.000"), clip(proc, 20), clip(e.OpID, 16),
		e.Attempts, vip, shortDuration(time.Duration(e.DurationNS)), paths)
}

// clip shortens s to n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// shortDuration prints d with three significant digits.
func shortDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
