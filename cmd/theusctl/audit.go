package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/theus-run/theus/client"
)

// auditCmd is theusctl audit: the --audit recipe's status, log, reload
// and resume (docs/GOVERNANCE.md).
func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Inspect and steer the supervisor's audit recipe (--audit)",
	}
	ctx := context.Background()
	call := func(name string, f func(c *client.Client, enc *json.Encoder) error) error {
		c, err := a.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		enc := json.NewEncoder(a.stdout)
		enc.SetEscapeHTML(false)
		if err := f(c, enc); err != nil {
			return fmt.Errorf("audit %s: %w", name, err)
		}
		return nil
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Print the recipe in force, every rule with its counter, and the stopped processes, as JSON",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return call("status", func(c *client.Client, enc *json.Encoder) error {
				st, err := c.AuditStatus(ctx)
				if err != nil {
					return err
				}
				return enc.Encode(st)
			})
		},
	}
	var n int
	log := &cobra.Command{
		Use:   "log",
		Short: "Print the newest violations, oldest first, one JSON object a line: time, process, rule, path, value, level, message, reason, count, action, recipe",
		Long:  "The log is a ring of the newest 1024 violations, in the supervisor's memory: a restart empties it (the counters survive, see theusctl audit status).",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if n < 1 {
				return fmt.Errorf("audit log: --n %d: want at least 1", n)
			}
			return call("log", func(c *client.Client, enc *json.Encoder) error {
				es, _, err := c.AuditLog(ctx, n)
				if err != nil {
					return err
				}
				for _, e := range es {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	log.Flags().IntVar(&n, "n", 20, "how many violations to print (at most 1024)")
	reload := &cobra.Command{
		Use:   "reload",
		Short: "Load the --audit file again; print {ok, recipe} (its generation). A recipe that does not load is refused with file:line, and the old one stays",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return call("reload", func(c *client.Client, enc *json.Encoder) error {
				gen, err := c.AuditReload(ctx)
				if err != nil {
					return err
				}
				return enc.Encode(struct {
					OK     bool   `json:"ok"`
					Recipe uint64 `json:"recipe"`
				}{true, gen})
			})
		},
	}
	resume := &cobra.Command{
		Use:   "resume PROCESS",
		Short: "Lift the stop an S rule put on PROCESS; print {ok, process, resumed} (resumed false: it was not stopped)",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, pos []string) error {
			return call("resume", func(c *client.Client, enc *json.Encoder) error {
				ok, err := c.AuditResume(ctx, pos[0])
				if err != nil {
					return err
				}
				return enc.Encode(struct {
					OK      bool   `json:"ok"`
					Process string `json:"process"`
					Resumed bool   `json:"resumed"`
				}{true, pos[0], ok})
			})
		},
	}
	cmd.AddCommand(status, log, reload, resume)
	return cmd
}
