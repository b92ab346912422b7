package client

import (
	"context"
	"encoding/json"
	"time"

	"github.com/theus-run/theus/protocol"
)

// Message is one outbox message (docs/OUTBOX.md).
type Message struct {
	// ID is "<topic>.<seq>": stable across pulls and restarts, never
	// reused, so a consumer deduplicates on it.
	ID      string          `json:"id"`
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload"`
	Version uint64          `json:"version"` // the commit that emitted it
}

// Pull returns up to max (0: 100; at most 10000) of the oldest
// unacknowledged messages of topic that no other pull holds, and holds
// them for the supervisor's default lease (30s): Ack them before it
// ends, or they are delivered again.
func (c *Client) Pull(ctx context.Context, topic string, max int) ([]Message, error) {
	return c.PullLease(ctx, topic, max, 0)
}

// PullLease is Pull with a lease of its own (0: the default; rounded up
// to a millisecond; at most 24h).
func (c *Client) PullLease(ctx context.Context, topic string, max int, lease time.Duration) ([]Message, error) {
	in := struct {
		Topic   string `json:"topic"`
		Max     int    `json:"max,omitempty"`
		LeaseMS int64  `json:"lease_ms,omitempty"`
	}{Topic: topic, Max: max}
	if lease > 0 {
		in.LeaseMS = (lease + time.Millisecond - 1).Milliseconds()
	}
	var out struct {
		Messages []Message `json:"messages"`
	}
	if err := c.Call(ctx, protocol.MethodOutboxPull, in, &out); err != nil {
		return nil, err
	}
	return out.Messages, nil
}

// AckResult is what Ack did: how many messages it removed, and the ids
// that named none (acknowledged before, or never emitted).
type AckResult struct {
	Acked   int      `json:"acked"`
	Unknown []string `json:"unknown"`
}

// Ack removes the messages with these ids, all in one commit, and
// returns once that commit is durable. A malformed id fails the whole
// call (bad_request) and removes nothing.
func (c *Client) Ack(ctx context.Context, ids ...string) (AckResult, error) {
	var out AckResult
	err := c.Call(ctx, protocol.MethodOutboxAck, struct {
		IDs []string `json:"ids"`
	}{ids}, &out)
	return out, err
}
