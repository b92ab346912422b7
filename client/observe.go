package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/theus-run/theus/protocol"
)

// Stats is every counter of the supervisor at one moment: the document
// the stats method returns (docs/OPERATIONS.md), which /metrics and the
// status page show too.
type Stats = protocol.Stats

// LogEntry is one commit of the commit log, or, in a follow, a count of
// commits missed (Lagged).
type LogEntry = protocol.LogEntry

// Stats returns the supervisor's counters.
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var out Stats
	if err := c.Call(ctx, protocol.MethodStats, struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Log returns the newest n commits (0: the default, 20), only process's
// when it is not "", oldest first, and how many commits the log has held
// since the supervisor started.
func (c *Client) Log(ctx context.Context, n int, process string) ([]LogEntry, uint64, error) {
	var out protocol.LogReply
	if err := c.Call(ctx, protocol.MethodLog, protocol.LogRequest{N: n, Process: process}, &out); err != nil {
		return nil, 0, err
	}
	return out.Entries, out.Total, nil
}

// LogFollower is an open FollowLog. Its reader calls Next until it
// returns an error; Close ends it early.
type LogFollower struct {
	st *Stream
}

// FollowLog returns the newest n commits (0: 20) of process ("" for
// every process), then every commit after them, as Next reads them. It
// returns once the follow is in place: every commit after it is
// delivered, unless the follower falls more than the log's size behind
// (an entry with Lagged set says how many it missed).
func (c *Client) FollowLog(ctx context.Context, n int, process string) (*LogFollower, error) {
	st, err := c.Subscribe(ctx, protocol.StreamLog, protocol.LogRequest{N: n, Process: process})
	if err != nil {
		return nil, err
	}
	var ready struct {
		Following *string `json:"following"`
	}
	select {
	case b, ok := <-st.Items():
		if !ok {
			if err := st.Err(); err != nil {
				return nil, fmt.Errorf("client: log follow: %w", err)
			}
			return nil, fmt.Errorf("client: log follow: the stream ended at once")
		}
		if err := json.Unmarshal(b, &ready); err != nil || ready.Following == nil {
			st.Close()
			return nil, fmt.Errorf("client: log follow: expected the subscription's confirmation, got %s", b)
		}
	case <-ctx.Done():
		st.Close()
		return nil, ctx.Err()
	}
	return &LogFollower{st: st}, nil
}

// Next returns the next commit, or a lagged count. It returns io.EOF
// once the follow was closed, the stream's error when it ended
// otherwise (shutting_down), or ctx's error.
func (f *LogFollower) Next(ctx context.Context) (LogEntry, error) {
	return nextItem[LogEntry](ctx, f.st, "log follow")
}

// Close ends the follow; Next then returns io.EOF once the supervisor
// has confirmed.
func (f *LogFollower) Close() error { return f.st.Close() }
