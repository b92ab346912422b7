package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/theus-run/theus/client"
)

func (a *app) outboxCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Take the messages processes emitted (at least once: pull, then ack)",
	}
	var max int
	var lease time.Duration
	pull := &cobra.Command{
		Use:   "pull TOPIC",
		Short: "Print the oldest unacknowledged messages of TOPIC, one JSON object {id, topic, payload, version} a line, and lease them",
		Long: "Messages are printed oldest first, one JSON line each; none prints nothing. " +
			"Each is leased for --lease: no other pull gets it until the lease ends, and then it is delivered again unless acked " +
			"(theusctl outbox ack ID...). Leases are held in memory: a supervisor restart ends them all.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, pos []string) error {
			if cmd.Flags().Changed("lease") && lease < time.Millisecond {
				return fmt.Errorf("outbox pull %s: --lease %s: want at least 1ms", pos[0], lease)
			}
			if max < 1 {
				return fmt.Errorf("outbox pull %s: --max %d: want at least 1", pos[0], max)
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ms, err := c.PullLease(context.Background(), pos[0], max, lease)
			if err != nil {
				return fmt.Errorf("outbox pull %s: %w", pos[0], err)
			}
			enc := json.NewEncoder(a.stdout)
			for _, m := range ms {
				if err := enc.Encode(m); err != nil {
					return err
				}
			}
			return nil
		},
	}
	pull.Flags().IntVar(&max, "max", 100, "the most messages to take (at most 10000)")
	pull.Flags().DurationVar(&lease, "lease", 30*time.Second, "how long the messages are held for this pull before they are delivered again (at most 24h)")
	cmd.AddCommand(pull, &cobra.Command{
		Use:   "ack ID...",
		Short: "Remove the messages with these ids, in one commit; print {ok, acked, unknown}",
		Long:  "unknown lists the ids that named no message (acked before, or never emitted). A malformed id fails the call and removes nothing.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, ids []string) error {
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.Ack(context.Background(), ids...)
			if err != nil {
				return fmt.Errorf("outbox ack: %w", err)
			}
			return json.NewEncoder(a.stdout).Encode(struct {
				OK bool `json:"ok"`
				client.AckResult
			}{true, res})
		},
	})
	return cmd
}
