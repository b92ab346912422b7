package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/theus-run/theus/client"
)

// errShown is a failure whose report is on stdout already: exit 1, say
// nothing more.
var errShown = errors.New("reported")

func (a *app) fluxCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "flux", Short: "Run and inspect Flux workflows (see docs/FLUX.md)"}
	cmd.AddCommand(a.fluxValidateCmd(), a.fluxRunCmd(), a.fluxStatusCmd(), a.fluxCancelCmd(), a.fluxListCmd(), a.fluxWatchCmd())
	return cmd
}

func (a *app) fluxValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a workflow or machine file against the running supervisor's processes; print ok or its errors (exit 1)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			src, err := os.ReadFile(pos[0])
			if err != nil {
				return err
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			problems, err := c.ValidateFlow(context.Background(), pos[0], src)
			if err != nil {
				return fmt.Errorf("flux validate %s: %w", pos[0], err)
			}
			if len(problems) == 0 {
				fmt.Fprintln(a.stdout, "ok")
				return nil
			}
			for _, p := range problems {
				fmt.Fprintln(a.stdout, p)
			}
			return errShown
		},
	}
}

// isFile reports whether arg names a file rather than a loaded workflow:
// a path, or a name ending in .yaml or .yml (a workflow's name has no
// extension), there or not.
func isFile(arg string) bool {
	return strings.ContainsRune(arg, filepath.Separator) || strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml")
}

func (a *app) fluxRunCmd() *cobra.Command {
	var args, id string
	var maxOps int
	var timeout time.Duration
	var detach bool
	cmd := &cobra.Command{
		Use:   "run NAME|FILE",
		Short: "Run a loaded workflow (NAME) or a file once (FILE); wait and print the run as JSON (exit 1 if it failed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, pos []string) error {
			req := client.FlowRequest{ID: id, MaxOps: maxOps, Timeout: timeout, Detach: detach}
			if args != "" {
				if !json.Valid([]byte(args)) {
					return fmt.Errorf("flux run %s: --args is not valid JSON: %s", pos[0], args)
				}
				req.Args = json.RawMessage(args)
			}
			if maxOps < 0 {
				return fmt.Errorf("flux run %s: --max-ops %d: want 1 or more", pos[0], maxOps)
			}
			if cmd.Flags().Changed("timeout") && timeout < time.Millisecond {
				return fmt.Errorf("flux run %s: --timeout %s: want at least 1ms", pos[0], timeout)
			}
			if isFile(pos[0]) {
				src, err := os.ReadFile(pos[0])
				if err != nil {
					return err
				}
				req.File, req.Source = pos[0], string(src)
			} else {
				req.Name = pos[0]
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			f, err := c.RunFlow(context.Background(), req)
			if err != nil {
				return fmt.Errorf("flux run %s: %w", pos[0], err)
			}
			if detach {
				return a.printJSON(map[string]any{"ok": true, "run": f.Run})
			}
			return a.printFlow(f)
		},
	}
	cmd.Flags().StringVar(&args, "args", "", "the run's args, a JSON object (args in conditions)")
	cmd.Flags().StringVar(&id, "id", "", "run id ([A-Za-z0-9_-], at most 64): a start with an id in use by the same workflow and args is the first run again, not a new one")
	cmd.Flags().IntVar(&maxOps, "max-ops", 0, "most steps and loop iterations the run may visit (default 10000); past it the run fails with flux_max_ops")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "the run's deadline from its start (default none); past it the run fails with flux_timeout")
	cmd.Flags().BoolVar(&detach, "detach", false, "print {\"ok\":true,\"run\":ID} at once instead of waiting")
	return cmd
}

// printFlow prints a run; a failed or cancelled one exits 1.
func (a *app) printFlow(f *client.Flow) error {
	out := struct {
		OK bool `json:"ok"`
		*client.Flow
	}{f.Code == "", f}
	if err := a.printJSON(out); err != nil {
		return err
	}
	if f.Code != "" {
		return errShown
	}
	return nil
}

func (a *app) printJSON(v any) error { return json.NewEncoder(a.stdout).Encode(v) }

func (a *app) fluxStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status RUN",
		Short: "Print a run as committed: status, position, ops and its steps with their versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			return a.withClient(func(c *client.Client) error {
				f, err := c.FlowStatus(context.Background(), pos[0])
				if err != nil {
					return fmt.Errorf("flux status %s: %w", pos[0], err)
				}
				return a.printFlow(f)
			})
		},
	}
}

func (a *app) fluxCancelCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cancel RUN",
		Short: "Stop a running run; its committed steps stay",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			return a.withClient(func(c *client.Client) error {
				f, err := c.CancelFlow(context.Background(), pos[0])
				if err != nil {
					return fmt.Errorf("flux cancel %s: %w", pos[0], err)
				}
				return a.printJSON(struct {
					OK bool `json:"ok"`
					*client.Flow
				}{true, f})
			})
		},
	}
}

func (a *app) fluxListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Print the loaded workflows and machines and the runs on record, as JSON",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return a.withClient(func(c *client.Client) error {
				l, err := c.ListFlows(context.Background())
				if err != nil {
					return fmt.Errorf("flux list: %w", err)
				}
				return a.printJSON(l)
			})
		},
	}
}

func (a *app) fluxWatchCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "watch RUN|MACHINE",
		Short: "Print a run's (or machine's) events as JSON lines until it ends",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			return a.withClient(func(c *client.Client) error {
				st, err := c.WatchFlow(context.Background(), pos[0])
				if err != nil {
					return fmt.Errorf("flux watch %s: %w", pos[0], err)
				}
				for item := range st.Items() {
					fmt.Fprintf(a.stdout, "%s\n", item)
				}
				if err := st.Err(); err != nil {
					return fmt.Errorf("flux watch %s: %w", pos[0], err)
				}
				return nil
			})
		},
	}
}

func (a *app) withClient(f func(*client.Client) error) error {
	c, err := a.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return f(c)
}

func (a *app) fsmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "fsm", Short: "Start and drive state machines (see docs/FLUX.md)"}
	var id, args string
	start := &cobra.Command{
		Use:   "start NAME",
		Short: "Start a machine in its initial state; print it as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			var raw json.RawMessage
			if args != "" {
				if !json.Valid([]byte(args)) {
					return fmt.Errorf("fsm start %s: --args is not valid JSON: %s", pos[0], args)
				}
				raw = json.RawMessage(args)
			}
			return a.withClient(func(c *client.Client) error {
				m, err := c.StartMachine(context.Background(), pos[0], id, raw)
				if err != nil {
					return fmt.Errorf("fsm start %s: %w", pos[0], err)
				}
				return a.printMachine(m)
			})
		},
	}
	start.Flags().StringVar(&id, "id", "", "machine id ([A-Za-z0-9_-], at most 64); a start with an id in use by the same machine and args returns it")
	start.Flags().StringVar(&args, "args", "", "args for the entry blocks, a JSON object")
	status := &cobra.Command{
		Use:   "status ID",
		Short: "Print a machine: its state and its transitions with their versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			return a.withClient(func(c *client.Client) error {
				m, err := c.MachineStatus(context.Background(), pos[0])
				if err != nil {
					return fmt.Errorf("fsm status %s: %w", pos[0], err)
				}
				return a.printMachine(m)
			})
		},
	}
	send := &cobra.Command{
		Use:   "send ID EVENT",
		Short: "Deliver EVENT to a machine; print it after the transition (an event its state has no transition for fails)",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, pos []string) error {
			return a.withClient(func(c *client.Client) error {
				m, err := c.SendEvent(context.Background(), pos[0], pos[1])
				if err != nil {
					return fmt.Errorf("fsm send %s %s: %w", pos[0], pos[1], err)
				}
				return a.printMachine(m)
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "Print the machines on record as JSON",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			return a.withClient(func(c *client.Client) error {
				ms, err := c.ListMachines(context.Background())
				if err != nil {
					return fmt.Errorf("fsm list: %w", err)
				}
				return a.printJSON(map[string]any{"machines": ms})
			})
		},
	}
	cmd.AddCommand(start, status, send, list)
	return cmd
}

func (a *app) printMachine(m *client.Machine) error {
	return a.printJSON(struct {
		OK bool `json:"ok"`
		*client.Machine
	}{true, m})
}
